//! The PostgreSQL harness: one private server per test binary run, a fresh database per test.
//!
//! The server is Debian's `postgresql` binaries (`/usr/lib/postgresql/<version>/bin`, or
//! `SUNDIAL_PG_BIN`), initialised with `initdb` into `<target>/tmp/pg-test/<pid>/<name>` and started
//! with `pg_ctl start -w` on a free loopback port, with password authentication and an ICU
//! `en-US` default collation (so a key column without `COLLATE "C"` would sort wrongly). As
//! root, the server runs as the `postgres` system user. A reaper process, holding a pipe from
//! this process, stops the server (`pg_ctl stop -m fast`) and removes its data when this process
//! exits, however it exits; directories of earlier runs whose process is gone are cleaned up
//! at start. Missing binaries fail the tests: install Debian's `postgresql`.

use std::fs;
use std::future::Future;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use sundial_storage::DynStore;
use sundial_storage::postgres::{PostgresOptions, PostgresStore, schema};

use super::Harness;

/// The bootstrap superuser of the private server, and its password.
pub const USER: &str = "sundial";
pub const PASSWORD: &str = "conformance-secret";

/// A fresh database on the private server, with the current schema.
pub struct PostgresHarness {
    options: PostgresOptions,
}

impl PostgresHarness {
    /// The options that reach this test's database.
    pub fn options(&self) -> &PostgresOptions {
        &self.options
    }
}

impl Harness for PostgresHarness {
    fn new() -> Self {
        let options = server().fresh_options();
        block_on(async {
            assert!(
                schema::create_database(&options)
                    .await
                    .expect("create database")
            );
            schema::setup(&options).await.expect("schema setup");
        });
        PostgresHarness { options }
    }

    fn open(&self) -> DynStore {
        Arc::new(block_on(PostgresStore::open(&self.options)).expect("open postgres store"))
    }
}

/// Runs `f` to completion from inside a multi-threaded tokio test.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

/// The private server of this process, started on first use.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| tokio::task::block_in_place(|| Server::start("shared")))
}

/// A private PostgreSQL server.
pub struct Server {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    databases: AtomicUsize,
    /// The reaper stops the server when this pipe closes (when this process exits).
    _reaper: Mutex<Child>,
}

impl Server {
    /// Initialises and starts a server of this process named `name` (its directory's name).
    /// Tests that restart a server start their own; the others share [`server`].
    pub fn start(name: &str) -> Server {
        let bin = server_binaries();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pg-test");
        static CLEANED: OnceLock<()> = OnceLock::new();
        CLEANED.get_or_init(|| clean_stale_runs(&root, &bin));
        let run_dir = root.join(std::process::id().to_string());
        fs::create_dir_all(&run_dir).expect("create the run's dir");
        give_to_server_user(&run_dir);
        let dir = run_dir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("remove an old server dir");
        }
        fs::create_dir_all(&dir).expect("create the server dir");
        let password_file = dir.join("password");
        fs::write(&password_file, PASSWORD).expect("write password file");
        give_to_server_user(&dir);
        give_to_server_user(&password_file);
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
        ]));
        let port = start_on_a_free_port(&bin, &data, &log);
        let reaper = spawn_reaper(&bin, &data);
        Server {
            bin,
            data,
            log,
            port,
            databases: AtomicUsize::new(0),
            _reaper: Mutex::new(reaper),
        }
    }

    /// Options naming a database no test has used yet (not created).
    pub fn fresh_options(&self) -> PostgresOptions {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        self.options(&format!("test_{n}"))
    }

    /// Options for `database` on this server.
    pub fn options(&self, database: &str) -> PostgresOptions {
        PostgresOptions {
            connect_addr: format!("127.0.0.1:{}", self.port),
            database_name: database.to_string(),
            user: USER.to_string(),
            password: PASSWORD.to_string(),
            max_conns: 8,
            ..PostgresOptions::default()
        }
    }

    /// The server's loopback port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Restarts the server with `pg_ctl restart -m MODE` (`fast` or `immediate`) and waits
    /// until it accepts connections again.
    pub fn restart(&self, mode: &str) {
        let status = pg_tool(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-m", mode, "-w", "-t", "60", "restart"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl restart");
        assert!(
            status.success(),
            "pg_ctl restart failed; see {:?}",
            self.log
        );
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn server_binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("SUNDIAL_PG_BIN") {
        return PathBuf::from(dir);
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
    match found.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin/initdb): install \
             Debian's `postgresql` package (apt-get install postgresql) or set SUNDIAL_PG_BIN \
             to run the PostgreSQL tests"
        ),
    }
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
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
fn give_to_server_user(path: &Path) {
    if !running_as_root() {
        return;
    }
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let ids = passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&"postgres") && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    });
    let Some((uid, gid)) = ids else {
        panic!(
            "running as root, the PostgreSQL tests need the `postgres` system user (Debian's \
             `postgresql` package creates it)"
        );
    };
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
}

/// Runs a PostgreSQL tool to completion, failing the test with its output if it fails.
fn run(command: &mut Command) {
    let output = command.output().expect("run PostgreSQL tool");
    assert!(
        output.status.success(),
        "{:?} failed: {}{}",
        command.get_program(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Starts the server on a free loopback port (another port if that one was taken meanwhile).
fn start_on_a_free_port(bin: &Path, data: &Path, log: &Path) -> u16 {
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port")
            .port();
        let settings = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' \
             -c fsync=off -c full_page_writes=off -c max_connections=300"
        );
        let status = pg_tool(bin, "pg_ctl")
            .arg("-D")
            .arg(data)
            .arg("-l")
            .arg(log)
            .args(["-w", "-t", "60", "-o", &settings, "start"])
            .stdout(Stdio::null())
            .status()
            .expect("run pg_ctl start");
        if status.success() {
            return port;
        }
    }
    panic!(
        "the private PostgreSQL server did not start: {}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// A shell that waits for its standard input to close (this process exited), then stops the
/// server and removes its data.
fn spawn_reaper(bin: &Path, data: &Path) -> Child {
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
        .expect("spawn the server's reaper")
}

/// Stops and removes the servers of earlier runs whose process is gone.
fn clean_stale_runs(root: &Path, bin: &Path) {
    for run in fs::read_dir(root).into_iter().flatten().flatten() {
        let Some(pid) = run.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
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
