//! A private MariaDB server (MariaDB 10.11 stands in for MySQL 8, which Debian does not ship).
//!
//! A server has a fresh data directory under `<root>/mariadb-test/<pid>-<name>`, its own
//! loopback port and socket, and a user with a password and every privilege. A small shell
//! watchdog starts the server and holds its PID; it reads commands from a pipe whose write end
//! only this process holds, and when the pipe closes (this process ended, however it ended) it
//! stops the server and removes the directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::{free_port, process_exists, run, running_as_root};

/// The user the server is set up with (from `127.0.0.1` and `localhost`).
pub const USER: &str = "sundial";
/// Its password.
pub const PASSWORD: &str = "testdb-password";
/// How long the server may take to accept its first login, or to stop.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A running MariaDB server and its watchdog.
pub struct Server {
    /// Its loopback port.
    pub port: u16,
    /// Its Unix socket.
    pub socket: PathBuf,
    /// The write end of the watchdog's pipe: commands (`stop`, `crash`, `start`), and the
    /// lifeline: when it closes, the watchdog stops the server for good.
    control: Mutex<ChildStdin>,
    /// The file where the watchdog writes the server's PID.
    server_pid: PathBuf,
    error_log: PathBuf,
    /// The `mariadb` client, for readiness and [`Server::sql`].
    client: PathBuf,
}

/// Finds a MariaDB program on the `PATH` or in the system directories Debian installs it to.
fn program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            format!(
                "`{name}` not found: install Debian's `mariadb-server` \
                 (`apt-get install mariadb-server`; .ci/run does it)"
            )
        })
}

/// Removes the data directories of earlier runs (`<pid>` or `<pid>-<name>`) whose process is
/// gone.
fn remove_stale_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.split('-').next().unwrap_or_default();
        if !process_exists(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The watchdog: starts the server, then serves commands read from its standard input; when
/// the input closes (the test process ended) it stops the server by its PID and removes the
/// run's directory.
const WATCHDOG: &str = r#"
    start() {
        "$@" </dev/null >/dev/null 2>&1 &
        pid=$!
        echo "$pid" > "$SERVER_PID"
    }
    start "$@"
    while read -r command; do
        case "$command" in
            stop) kill "$pid"; wait "$pid" ;;
            crash) kill -9 "$pid"; wait "$pid" ;;
            start) start "$@" ;;
        esac
    done
    kill "$pid" 2>/dev/null
    wait "$pid"
    rm -rf "$RUN_DIR"
"#;

impl Server {
    /// Starts a private server named `name` under `root`, ready for logins.
    pub fn start(root: &Path, name: &str) -> Result<Server, String> {
        let install_db = program("mariadb-install-db")?;
        let mariadbd = program("mariadbd")?;
        let client = program("mariadb")?;
        let root = root.join("mariadb-test");
        remove_stale_runs(&root);
        let dir = root.join(format!("{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (data, tmp) = (dir.join("data"), dir.join("tmp"));
        for d in [&data, &tmp] {
            std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        // mariadbd refuses to run as root unless told to.
        let user_flag = running_as_root().then_some("--user=root");
        run(Command::new(&install_db)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args(user_flag))?;
        let init = dir.join("init.sql");
        let grant = format!(
            "CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1' WITH GRANT OPTION;\n\
             CREATE USER IF NOT EXISTS '{USER}'@'localhost' IDENTIFIED BY '{PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'localhost' WITH GRANT OPTION;\n"
        );
        std::fs::write(&init, grant).map_err(|e| format!("writing {}: {e}", init.display()))?;

        let port = free_port()?;
        let error_log = dir.join("error.log");
        let server_pid = dir.join("server.pid");
        // A Unix socket's path has room for 107 bytes; a deep checkout puts it in /tmp instead.
        let mut socket = dir.join("mysqld.sock");
        if socket.as_os_str().len() > 100 {
            socket =
                std::env::temp_dir().join(format!("sundial-{}-{name}.sock", std::process::id()));
        }
        let mut server_args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            format!("--tmpdir={}", tmp.display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".to_string(),
            format!("--socket={}", socket.display()),
            format!("--pid-file={}", dir.join("mariadbd.pid").display()),
            format!("--log-error={}", error_log.display()),
            format!("--init-file={}", init.display()),
            "--skip-name-resolve".to_string(),
            "--max-connections=1000".to_string(),
            "--innodb-buffer-pool-size=128M".to_string(),
        ];
        server_args.extend(user_flag.map(str::to_string));
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("mariadb-watchdog")
            .arg(&mariadbd)
            .args(&server_args)
            .env("SERVER_PID", &server_pid)
            .env("RUN_DIR", &dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", mariadbd.display()))?;
        let control = child.stdin.take().ok_or("the watchdog has no stdin")?;
        let server = Server {
            port,
            socket,
            control: Mutex::new(control),
            server_pid,
            error_log,
            client,
        };
        server.wait_until_ready()?;
        Ok(server)
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs `sql` (statements separated by `;`) as [`USER`] over TCP, in `database` when
    /// given, with the `mariadb` client; its output, one row a line, columns separated by tabs.
    pub fn sql(&self, database: Option<&str>, sql: &str) -> Result<String, String> {
        let port = self.port.to_string();
        run(Command::new(&self.client)
            .args([
                "--no-defaults",
                "--protocol=TCP",
                "-h",
                "127.0.0.1",
                "-P",
                &port,
            ])
            .args(["-u", USER, "--batch", "--skip-column-names"])
            .args(database)
            .args(["-e", sql])
            .env("MYSQL_PWD", PASSWORD))
    }

    fn command(&self, command: &str) -> Result<(), String> {
        let mut control = self.control.lock().unwrap_or_else(|p| p.into_inner());
        writeln!(control, "{command}").map_err(|e| format!("the watchdog is gone: {e}"))
    }

    /// The PID the watchdog last started the server with.
    fn pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(&self.server_pid).ok()?;
        Some(pid.trim().to_string()).filter(|p| !p.is_empty())
    }

    /// Stops the server (`crash`: with SIGKILL, as a power cut would) and waits until its
    /// process is gone.
    pub fn stop(&self, crash: bool) -> Result<(), String> {
        let pid = self.pid().ok_or("no server PID")?;
        self.command(if crash { "crash" } else { "stop" })?;
        let deadline = Instant::now() + START_DEADLINE;
        while process_exists(&pid) {
            if Instant::now() > deadline {
                return Err(format!("mariadbd {pid} did not stop"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the stopped server again on the same data and port, and waits until it serves.
    pub fn restart(&self) -> Result<(), String> {
        // The watchdog writes the new PID to a fresh file.
        let _ = std::fs::remove_file(&self.server_pid);
        self.command("start")?;
        let deadline = Instant::now() + START_DEADLINE;
        while self.pid().is_none() {
            if Instant::now() > deadline {
                return Err("the watchdog did not start mariadbd again".to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.wait_until_ready()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.error_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Polls a real login until it works, the server process is gone, or the deadline passes.
    fn wait_until_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let last = match self.sql(None, "SELECT 1") {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            if let Some(pid) = self.pid()
                && !process_exists(&pid)
            {
                return Err(format!("mariadbd exited:\n{}", self.log_tail()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "not ready after {START_DEADLINE:?} ({last}):\n{}",
                    self.log_tail()
                ));
            }
            // Nothing to await: the server gives no signal when it starts listening.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
