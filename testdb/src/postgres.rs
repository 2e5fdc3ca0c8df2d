//! A private PostgreSQL server.
//!
//! Debian's `postgresql` binaries (`/usr/lib/postgresql/<version>/bin`, or `SUNDIAL_PG_BIN`),
//! initialised with `initdb` into `<root>/pg-test/<pid>/<name>` and started with
//! `pg_ctl start -w` on a free loopback port, with password authentication and an ICU `en-US`
//! default collation (so a key column without `COLLATE "C"` would sort wrongly). As root, the
//! server runs as the `postgres` system user. A reaper process, holding a pipe from this
//! process, stops the server (`pg_ctl stop -m fast`) and removes its data when this process
//! exits.

use std::fs;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use crate::{free_port, process_exists, run, running_as_root};

/// The bootstrap superuser of the server.
pub const USER: &str = "sundial";
/// Its password.
pub const PASSWORD: &str = "testdb-secret";

/// Whether the server may lose committed data in a crash of the machine (never of the server
/// process alone): tests run faster without fsync.
#[derive(Clone, Copy)]
enum Durability {
    Unsafe,
    Durable,
}

/// A running private PostgreSQL server, stopped when this process exits.
pub struct Server {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    /// The reaper stops the server when this pipe closes (when this process exits).
    _reaper: Mutex<Child>,
}

impl Server {
    /// Initialises and starts a server named `name` (its directory's name) under `root`,
    /// ready for connections. Tests need no crash safety from it: it runs without fsync.
    pub fn start(root: &Path, name: &str) -> Result<Server, String> {
        Server::start_with(root, name, Durability::Unsafe)
    }

    /// Like [`Server::start`], with PostgreSQL's durable defaults (`fsync`,
    /// `full_page_writes`, `synchronous_commit` on), for benchmarks that compare stores.
    pub fn start_durable(root: &Path, name: &str) -> Result<Server, String> {
        Server::start_with(root, name, Durability::Durable)
    }

    fn start_with(root: &Path, name: &str, durability: Durability) -> Result<Server, String> {
        let bin = server_binaries()?;
        let root = root.join("pg-test");
        static CLEANED: OnceLock<()> = OnceLock::new();
        CLEANED.get_or_init(|| clean_stale_runs(&root, &bin));
        let run_dir = root.join(std::process::id().to_string());
        create_dir(&run_dir)?;
        give_to_server_user(&run_dir)?;
        let dir = run_dir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
        create_dir(&dir)?;
        let password_file = dir.join("password");
        fs::write(&password_file, PASSWORD)
            .map_err(|e| format!("writing {}: {e}", password_file.display()))?;
        give_to_server_user(&dir)?;
        give_to_server_user(&password_file)?;
        let data = dir.join("data");
        let log = dir.join("server.log");
        run(pg_tool(&bin, "initdb").args([
            "-D".as_ref(),
            data.as_os_str(),
            "-U".as_ref(),
            USER.as_ref(),
            format!("--pwfile={}", password_file.display()).as_ref(),
            "--auth=scram-sha-256".as_ref(),
            "-E".as_ref(),
            "UTF8".as_ref(),
            "--locale=C.UTF-8".as_ref(),
            "--locale-provider=icu".as_ref(),
            "--icu-locale=en-US".as_ref(),
            "--no-sync".as_ref(),
            "--no-instructions".as_ref(),
        ]))?;
        let port = start_on_a_free_port(&bin, &data, &log, durability)?;
        let reaper = spawn_reaper(&bin, &data)?;
        Ok(Server {
            bin,
            data,
            log,
            port,
            _reaper: Mutex::new(reaper),
        })
    }

    /// The server's loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Restarts the server with `pg_ctl restart -m MODE` (`fast` or `immediate`) and waits
    /// until it accepts connections again.
    pub fn restart(&self, mode: &str) -> Result<(), String> {
        run(pg_tool(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-m", mode, "-w", "-t", "60", "restart"]))
        .map(drop)
        .map_err(|e| format!("{e}; see {}", self.log.display()))
    }

    /// Runs `sql` (statements separated by `;`) in `database` as the superuser, with `psql`;
    /// its output, one row a line, columns separated by `|`.
    pub fn sql(&self, database: &str, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        run(Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &port, "-U", USER, "-d", database])
            .args(["-c", sql])
            .env("PGPASSWORD", PASSWORD))
    }
}

/// The directory holding `initdb`, `pg_ctl`, `postgres` and `psql`.
fn server_binaries() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("SUNDIAL_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): install \
         Debian's `postgresql` package (apt-get install postgresql; .ci/run does it) or set \
         SUNDIAL_PG_BIN"
            .to_string()
    })
}

fn create_dir(dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))
}

/// A PostgreSQL tool, run as the `postgres` user when this process is root (initdb and the
/// server refuse to run as root).
fn pg_tool(bin: &Path, tool: &str) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        command
    } else {
        Command::new(bin.join(tool))
    }
}

/// As root, makes `path` owned by the `postgres` user.
fn give_to_server_user(path: &Path) -> Result<(), String> {
    if !running_as_root() {
        return Ok(());
    }
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    });
    let Some((uid, gid)) = ids else {
        return Err(
            "running as root, the PostgreSQL server needs the `postgres` system user \
                    (Debian's `postgresql` package creates it)"
                .to_string(),
        );
    };
    chown(path, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", path.display()))
}

/// Starts the server on a free loopback port (another port if that one was taken meanwhile).
fn start_on_a_free_port(
    bin: &Path,
    data: &Path,
    log: &Path,
    durability: Durability,
) -> Result<u16, String> {
    let unsafe_settings = match durability {
        Durability::Unsafe => " -c fsync=off -c full_page_writes=off",
        Durability::Durable => "",
    };
    for _ in 0..5 {
        let port = free_port()?;
        let settings = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c max_connections=300{unsafe_settings}"
        );
        let started = pg_tool(bin, "pg_ctl")
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(log)
            .args(["-w", "-t", "60", "-o", &settings, "start"])
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running pg_ctl start: {e}"))?;
        if started.success() {
            return Ok(port);
        }
    }
    Err(format!(
        "the private PostgreSQL server did not start: {}",
        fs::read_to_string(log).unwrap_or_default()
    ))
}

/// A shell that waits for its standard input to close (this process exited), then stops the
/// server and removes its data.
fn spawn_reaper(bin: &Path, data: &Path) -> Result<Child, String> {
    let pg_ctl = bin.join("pg_ctl");
    let as_server_user = if running_as_root() {
        "runuser -u postgres -- "
    } else {
        ""
    };
    let script = format!(
        "read _; {as_server_user}\"$1\" -D \"$2\" -m fast -w stop >/dev/null 2>&1; rm -rf \"$2\""
    );
    Command::new("sh")
        .args(["-c", &script, "pg-reaper"])
        .arg(&pg_ctl)
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawning the server's reaper: {e}"))
}

/// Stops and removes the servers of earlier runs whose process is gone.
fn clean_stale_runs(root: &Path, bin: &Path) {
    for run in fs::read_dir(root).into_iter().flatten().flatten() {
        let Some(pid) = run.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if pid.parse::<u32>().is_err()
            || pid == std::process::id().to_string()
            || process_exists(&pid)
        {
            continue;
        }
        for server in fs::read_dir(run.path()).into_iter().flatten().flatten() {
            let data = server.path().join("data");
            if data.join("postmaster.pid").exists() {
                let _ = pg_tool(bin, "pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .args(["-m", "immediate", "-w", "stop"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let _ = fs::remove_dir_all(run.path());
    }
}
