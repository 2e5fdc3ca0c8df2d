//! The MySQL backend on a private MariaDB server (MariaDB 10.11 stands in for MySQL 8).
//!
//! The first test that needs it starts one server for the whole test binary: a fresh data
//! directory under the cargo target directory (`mariadb-test/<pid>`), its own loopback port and
//! socket, and a user with a password. Every test gets a database of its own. The server stops
//! when the test binary ends: a small shell watchdog holds the server's PID and the read end of
//! a pipe whose write end only this process holds; when the process exits, the pipe closes and
//! the watchdog kills the server and removes the directory. Without the MariaDB binaries every
//! test here fails, saying what to install.

use std::future::Future;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sundial_storage::mysql::{self, MysqlOptions, MysqlStore};
use sundial_storage::{DynStore, Error, ExecutionReader, ShardBatch, ShardStore, TransferTaskRow};

use super::Harness;

const USER: &str = "sundial";
const PASSWORD: &str = "conformance-password";
/// How long the server may take to accept its first connection.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// The running server.
struct Server {
    port: u16,
    /// The write end of the watchdog's pipe: held until the process exits.
    _lifeline: ChildStdin,
}

/// The server of this test binary, started on first use.
fn server() -> &'static Server {
    static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
    match SERVER.get_or_init(start_server) {
        Ok(server) => server,
        Err(why) => panic!("MariaDB test server: {why}"),
    }
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

/// Removes the data directories of earlier runs whose process is gone.
fn remove_stale_runs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name();
        if !Path::new("/proc").join(&pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start_server() -> Result<Server, String> {
    let install_db = program("mariadb-install-db")?;
    let mariadbd = program("mariadbd")?;
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mariadb-test");
    remove_stale_runs(&root);
    let dir = root.join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.join("data");
    std::fs::create_dir_all(&data).map_err(|e| format!("creating {}: {e}", data.display()))?;
    // mariadbd refuses to run as root unless told to.
    let as_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let user_flag = as_root.then_some("--user=root");

    let installed = Command::new(&install_db)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .args(user_flag)
        .output()
        .map_err(|e| format!("running {}: {e}", install_db.display()))?;
    if !installed.status.success() {
        return Err(format!(
            "{} failed: {}{}",
            install_db.display(),
            String::from_utf8_lossy(&installed.stdout),
            String::from_utf8_lossy(&installed.stderr)
        ));
    }
    let init = dir.join("init.sql");
    let grant = format!(
        "CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';\n\
         GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1';\n"
    );
    std::fs::write(&init, grant).map_err(|e| format!("writing {}: {e}", init.display()))?;

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port: {e}"))?
        .port();
    let error_log = dir.join("error.log");
    let server_pid = dir.join("server.pid");
    let mut server_args = vec![
        "--no-defaults".to_string(),
        format!("--datadir={}", data.display()),
        format!("--port={port}"),
        "--bind-address=127.0.0.1".to_string(),
        format!("--socket={}", dir.join("mysqld.sock").display()),
        format!("--pid-file={}", dir.join("mariadbd.pid").display()),
        format!("--log-error={}", error_log.display()),
        format!("--init-file={}", init.display()),
        "--skip-name-resolve".to_string(),
        "--max-connections=1000".to_string(),
        "--innodb-buffer-pool-size=128M".to_string(),
    ];
    server_args.extend(user_flag.map(str::to_string));
    // The watchdog: starts the server, then waits for its standard input to close (this
    // process ended) and stops the server by its PID.
    let watchdog = r#"
        "$@" </dev/null >/dev/null 2>&1 &
        pid=$!
        echo "$pid" > "$SERVER_PID"
        read -r _ || true
        kill "$pid" 2>/dev/null
        wait "$pid"
        rm -rf "$RUN_DIR"
    "#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(watchdog)
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
    let lifeline = child.stdin.take().expect("piped stdin");
    let server = Server {
        port,
        _lifeline: lifeline,
    };
    wait_until_ready(&server, &server_pid, &error_log)?;
    Ok(server)
}

/// Polls a real login until it works, the server process is gone, or the deadline passes.
fn wait_until_ready(server: &Server, server_pid: &Path, error_log: &Path) -> Result<(), String> {
    let log_tail = || {
        let log = std::fs::read_to_string(error_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let probe = options_on(server.port, "conformance_probe");
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        let last = match block_on(mysql::create_database(&probe)) {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let pid = std::fs::read_to_string(server_pid).unwrap_or_default();
        let pid = pid.trim();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            return Err(format!("mariadbd exited:\n{}", log_tail()));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not ready after {START_DEADLINE:?} ({last}):\n{}",
                log_tail()
            ));
        }
        // Nothing to await: the server gives no signal when it starts listening.
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `f` to completion from synchronous harness code inside a test's (multi-threaded)
/// runtime.
fn block_on<F: Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

fn options_on(port: u16, database: &str) -> MysqlOptions {
    MysqlOptions {
        connect_addr: format!("127.0.0.1:{port}"),
        database_name: database.to_string(),
        user: USER.to_string(),
        password: PASSWORD.to_string(),
        max_conns: 8,
        ..MysqlOptions::default()
    }
}

/// Options naming a database no other test uses (not created yet).
fn fresh_options() -> MysqlOptions {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    options_on(server().port, &format!("conformance_{n}"))
}

/// A database of its own on the test server, with the current schema.
pub struct MariadbHarness {
    options: MysqlOptions,
}

impl Harness for MariadbHarness {
    fn new() -> Self {
        let options = fresh_options();
        block_on(mysql::setup_schema(&options)).expect("set up the schema");
        MariadbHarness { options }
    }

    fn open(&self) -> DynStore {
        Arc::new(block_on(MysqlStore::open(&self.options)).expect("open the MySQL store"))
    }
}

// ---- the MySQL backend's own tests: schema commands, options, failures ----

/// A plain connection to the database of `options`, for the tests to look behind the store.
async fn admin(options: &MysqlOptions) -> mysql_async::Conn {
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(server().port)
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some(&options.database_name))
        .prefer_socket(false);
    mysql_async::Conn::new(opts)
        .await
        .expect("admin connection")
}

fn message(result: Result<MysqlStore, Error>) -> String {
    match result {
        Ok(_) => panic!("the store opened"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_refuses_a_missing_database_or_schema_naming_setup() {
    let options = fresh_options();
    let missing = message(MysqlStore::open(&options).await);
    assert!(missing.contains("sundial schema setup"), "{missing}");

    assert!(mysql::create_database(&options).await.unwrap());
    assert!(!mysql::create_database(&options).await.unwrap());
    let empty = message(MysqlStore::open(&options).await);
    assert!(empty.contains("sundial schema setup"), "{empty}");
    let version = mysql::schema_version(&options).await.unwrap();
    assert_eq!(version.stored, None);
    let err = mysql::update_schema(&options).await.unwrap_err();
    assert!(err.to_string().contains("sundial schema setup"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_is_idempotent_and_an_older_schema_needs_update() {
    let options = fresh_options();
    let set_up = mysql::setup_schema(&options).await.unwrap();
    assert_eq!(set_up.stored, Some(mysql::current_version()));
    mysql::setup_schema(&options).await.unwrap();
    MysqlStore::open(&options).await.unwrap();

    // As if written by an older build: the store refuses it, `setup` too, `update` fixes it.
    let mut conn = admin(&options).await;
    conn.query_drop("UPDATE schema_version SET version = 0")
        .await
        .unwrap();
    let older = message(MysqlStore::open(&options).await);
    assert!(older.contains("sundial schema update"), "{older}");
    let err = mysql::setup_schema(&options).await.unwrap_err();
    assert!(err.to_string().contains("sundial schema update"), "{err}");
    mysql::update_schema(&options).await.unwrap();
    let version = mysql::schema_version(&options).await.unwrap();
    assert_eq!(version.stored, Some(version.current));
    MysqlStore::open(&options).await.unwrap();

    // Written by a newer build: refused everywhere.
    conn.query_drop("UPDATE schema_version SET version = version + 1")
        .await
        .unwrap();
    let newer = message(MysqlStore::open(&options).await);
    assert!(newer.contains("newer"), "{newer}");
    assert!(mysql::update_schema(&options).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_setup_creates_the_database_and_schema() {
    let options = fresh_options();
    let store = MysqlStore::open_with_auto_setup(&options).await.unwrap();
    assert_eq!(store.acquire_shard(1).await.unwrap().range_id, 1);
    drop(store);
    // Again on the same database: nothing to do, the data stays.
    let store = MysqlStore::open_with_auto_setup(&options).await.unwrap();
    assert_eq!(store.acquire_shard(1).await.unwrap().range_id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable() {
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = options_on(port, "nowhere");
    let err = MysqlStore::open(&options).await.err().expect("refused");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_and_not_retryable() {
    let mut options = fresh_options();
    options.password = "wrong".to_string();
    let err = MysqlStore::open(&options).await.err().expect("refused");
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert!(err.to_string().contains("Access denied"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_it_cannot_honour_are_refused_by_key() {
    let mut options = fresh_options();
    options.tls.enabled = true;
    let err = message(MysqlStore::open(&options).await);
    assert!(err.contains("sql.tls.enabled"), "{err}");
}

/// Connections the server dropped while idle in the pool (a restart, `wait_timeout`, a
/// failover proxy) are replaced: the next calls succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_by_the_server_are_replaced() {
    let h = MariadbHarness::new();
    let store = h.open();
    let range = store.acquire_shard(1).await.unwrap().range_id;
    let mut conn = admin(&h.options).await;
    let list = "SELECT ID FROM information_schema.PROCESSLIST \
                WHERE DB = DATABASE() AND ID <> CONNECTION_ID()";
    let ids: Vec<u64> = conn.query(list).await.unwrap();
    assert!(!ids.is_empty(), "the store keeps idle connections");
    for id in &ids {
        conn.query_drop(format!("KILL {id}")).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while conn
        .query::<u64, _>(list)
        .await
        .unwrap()
        .iter()
        .any(|id| ids.contains(id))
    {
        assert!(Instant::now() < deadline, "killed connections linger");
        tokio::task::yield_now().await;
    }

    let batch = ShardBatch {
        transfer_tasks: vec![TransferTaskRow {
            task_id: 1,
            data: vec![],
        }],
        ..ShardBatch::default()
    };
    store.commit(1, range, batch).await.unwrap();
    assert_eq!(store.list_transfer_tasks(1, 0, 10).await.unwrap().len(), 1);
}

/// A commit that cannot get the shard's lock in time (`connectAttributes` set the session's
/// `innodb_lock_wait_timeout` to one second) wrote nothing: `Unavailable`, and it lands once the
/// lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_timeout_is_unavailable_and_writes_nothing() {
    let h = MariadbHarness::new();
    let mut options = h.options.clone();
    options
        .connect_attributes
        .insert("innodb_lock_wait_timeout".into(), "1".into());
    let store = MysqlStore::open(&options).await.unwrap();
    let range = store.acquire_shard(1).await.unwrap().range_id;

    let mut conn = admin(&options).await;
    let mut holder = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .unwrap();
    holder
        .query_drop("SELECT range_id FROM shards WHERE shard_id = 1 FOR UPDATE")
        .await
        .unwrap();
    let batch = ShardBatch {
        transfer_tasks: vec![TransferTaskRow {
            task_id: 7,
            data: vec![],
        }],
        ..ShardBatch::default()
    };
    let started = Instant::now();
    let err = store.commit(1, range, batch.clone()).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the attribute applied"
    );
    holder.rollback().await.unwrap();
    assert!(
        store
            .list_transfer_tasks(1, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );

    store.commit(1, range, batch).await.unwrap();
    assert_eq!(store.list_transfer_tasks(1, 0, 10).await.unwrap().len(), 1);
}

/// Keys are bytes: ordering is bytewise and a key longer than its column fails its write
/// instead of being cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_and_unusual_keys() {
    let h = MariadbHarness::new();
    let store = h.open();
    let range = store.acquire_shard(1).await.unwrap().range_id;
    let longest = super::key(&"w".repeat(2048), "run");
    store
        .commit(1, range, super::start_batch(&longest))
        .await
        .unwrap();
    assert!(store.get_execution(1, &longest).await.unwrap().is_some());
    let too_long = super::key(&"w".repeat(2049), "run");
    let err = store
        .commit(1, range, super::start_batch(&too_long))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert_eq!(store.list_executions(1, 10).await.unwrap().len(), 1);

    // Bytewise: 'Z' < 'a' < 'é' (0xC3 0xA9).
    for wf in ["é", "a", "Z"] {
        let k = super::key(wf, "run");
        store
            .commit(1, range, super::start_batch(&k))
            .await
            .unwrap();
    }
    let order: Vec<String> = store
        .list_executions(1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.workflow_id)
        .filter(|wf| wf.len() < 10)
        .collect();
    assert_eq!(order, vec!["Z", "a", "é"]);
}
