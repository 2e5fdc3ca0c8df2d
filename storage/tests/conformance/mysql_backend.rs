//! The MySQL backend's own tests, beyond the conformance suite: the schema commands, options,
//! and how failures of the server reach the caller.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use sundial_storage::mysql::{self, MysqlOptions, MysqlStore};
use sundial_storage::{Error, ExecutionReader, ShardBatch, ShardStore, TransferTaskRow};

use super::mysql::{MariadbHarness, fresh_database_name, fresh_options, server, start_server};
use super::{Harness, key, start_batch};

/// A plain connection to the database of `options`, for the tests to look behind the store.
async fn admin(options: &MysqlOptions) -> mysql_async::Conn {
    let (host, port) = options.connect_addr.split_once(':').expect("host:port");
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port.parse().expect("port"))
        .user(Some(&options.user))
        .pass(Some(&options.password))
        .db_name(Some(&options.database_name))
        .prefer_socket(false);
    mysql_async::Conn::new(opts)
        .await
        .expect("admin connection")
}

/// Locks shard 1's row (as an acquire in progress would) until the transaction ends.
async fn hold_shard_row(conn: &mut mysql_async::Conn) -> mysql_async::Transaction<'_> {
    let mut holder = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .unwrap();
    holder
        .query_drop("SELECT range_id FROM shards WHERE shard_id = 1 FOR UPDATE")
        .await
        .unwrap();
    holder
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
    assert_eq!(store.acquire_shard(1, "owner-a").await.unwrap().range_id, 1);
    drop(store);
    // Again on the same database: nothing to do, the data stays.
    let store = MysqlStore::open_with_auto_setup(&options).await.unwrap();
    assert_eq!(store.acquire_shard(1, "owner-a").await.unwrap().range_id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable() {
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = MysqlOptions {
        connect_addr: format!("127.0.0.1:{port}"),
        ..fresh_options()
    };
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

/// `connectProtocol: unix` reaches the server through its socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_socket_connection_serves() {
    let options = MysqlOptions {
        connect_protocol: "unix".to_string(),
        connect_addr: server().socket.display().to_string(),
        ..fresh_options()
    };
    let store = MysqlStore::open_with_auto_setup(&options).await.unwrap();
    assert_eq!(store.acquire_shard(1, "owner-a").await.unwrap().range_id, 1);
}

/// Connections the server dropped while idle in the pool (a restart, `wait_timeout`, a
/// failover proxy) are replaced: the next calls succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_killed_by_the_server_are_replaced() {
    let h = MariadbHarness::new();
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
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
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;

    let mut conn = admin(&options).await;
    let holder = hold_shard_row(&mut conn).await;
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
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let longest = key(&"w".repeat(2048), "run");
    store.commit(1, range, start_batch(&longest)).await.unwrap();
    assert!(store.get_execution(1, &longest).await.unwrap().is_some());
    let too_long = key(&"w".repeat(2049), "run");
    let err = store
        .commit(1, range, start_batch(&too_long))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
    assert_eq!(store.list_executions(1, 10).await.unwrap().len(), 1);

    // Bytewise: 'Z' < 'a' < 'é' (0xC3 0xA9).
    for wf in ["é", "a", "Z"] {
        let k = key(wf, "run");
        store.commit(1, range, start_batch(&k)).await.unwrap();
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

/// A server that stops (cleanly, then as a power cut would) and comes back: while it is down
/// every call is `Unavailable` and writes nothing; once it is back the same store serves again
/// and every acknowledged commit is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_costs_only_unavailable_and_loses_nothing() {
    let server = tokio::task::block_in_place(|| start_server("restart"))
        .unwrap_or_else(|why| panic!("MariaDB test server: {why}"));
    let options = server.options(&fresh_database_name());
    mysql::setup_schema(&options).await.unwrap();
    let store = MysqlStore::open(&options).await.unwrap();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    for (round, crash) in [(1, false), (2, true)] {
        let before = key(&format!("before-{round}"), "run");
        store.commit(1, range, start_batch(&before)).await.unwrap();
        tokio::task::block_in_place(|| server.stop(crash));

        let during = key(&format!("during-{round}"), "run");
        let err = store
            .commit(1, range, start_batch(&during))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        let err = store.get_execution(1, &before).await.unwrap_err();
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");

        tokio::task::block_in_place(|| server.restart()).unwrap();
        assert!(store.get_execution(1, &before).await.unwrap().is_some());
        // The refused commit left nothing: made again, its insert (expecting no row) lands.
        assert_eq!(store.get_execution(1, &during).await.unwrap(), None);
        store.commit(1, range, start_batch(&during)).await.unwrap();
    }
    assert_eq!(store.list_executions(1, 10).await.unwrap().len(), 4);
}

/// With every pooled connection busy, a call waits a while, then fails with `Unavailable`; the
/// busy call lands once it can.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_is_unavailable() {
    let h = MariadbHarness::new();
    let mut options = h.options.clone();
    options.max_conns = 1;
    let store = Arc::new(MysqlStore::open(&options).await.unwrap());
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;

    // The shard row is held, so a commit blocks on it holding the pool's only connection.
    let mut conn = admin(&options).await;
    let holder = hold_shard_row(&mut conn).await;
    let k = key("wf", "run");
    let blocked = tokio::spawn({
        let (store, batch) = (store.clone(), start_batch(&k));
        async move { store.commit(1, range, batch).await }
    });
    let mut watcher = admin(&options).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: Option<u64> = watcher
            .query_first(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
                 WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE 'UPDATE shards%'",
            )
            .await
            .unwrap();
        if waiting == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the commit never waited");
        tokio::task::yield_now().await;
    }

    let err = store.get_execution(1, &k).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unavailable(m) if m.contains("no connection")),
        "{err:?}"
    );
    holder.rollback().await.unwrap();
    blocked.await.unwrap().unwrap();
    assert!(store.get_execution(1, &k).await.unwrap().is_some());
}

/// Where [`CommitCutter`] cuts a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The `COMMIT` never reaches the server.
    BeforeCommit,
    /// The server gets the `COMMIT`; its answer never reaches the client.
    AfterCommit,
}

/// A TCP proxy in front of the test server that cuts one client connection at its next
/// `COMMIT`, once armed. The server side of a cut connection stays open, as when only the
/// client's network fails.
struct CommitCutter {
    port: u16,
    armed: Arc<Mutex<Option<Cut>>>,
}

/// A `COM_QUERY` packet's command byte followed by `COMMIT`.
const COMMIT_QUERY: &[u8] = b"\x03COMMIT";

impl CommitCutter {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(Mutex::new(None));
        let cutter = CommitCutter {
            port,
            armed: armed.clone(),
        };
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                let severed = Arc::new(AtomicBool::new(false));
                let (c, s, cut) = (
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    severed.clone(),
                );
                let (answered, answer_seen) = std::sync::mpsc::channel();
                std::thread::spawn(move || relay_answers(s, c, &cut, answered));
                let armed = armed.clone();
                std::thread::spawn(move || {
                    relay_requests(client, server, &severed, &armed, answer_seen)
                });
            }
        });
        cutter
    }

    fn arm(&self, cut: Cut) {
        *self.armed.lock().unwrap() = Some(cut);
    }

    /// True once the armed cut happened.
    fn disarmed(&self) -> bool {
        self.armed.lock().unwrap().is_none()
    }
}

/// Client to server, cutting at an armed `COMMIT`.
fn relay_requests(
    mut client: TcpStream,
    mut server: TcpStream,
    severed: &AtomicBool,
    armed: &Mutex<Option<Cut>>,
    answer_seen: std::sync::mpsc::Receiver<()>,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let is_commit = chunk.windows(COMMIT_QUERY.len()).any(|w| w == COMMIT_QUERY);
        let cut = if is_commit {
            armed.lock().unwrap().take()
        } else {
            None
        };
        if let Some(cut) = cut {
            // No answer reaches the client from here on.
            severed.store(true, Ordering::SeqCst);
            if cut == Cut::AfterCommit {
                let _ = server.write_all(chunk);
                // The client learns of the cut only once the server has answered, so the
                // COMMIT was carried out (otherwise the store's settling could end the session
                // before it runs the COMMIT, and rightly report it rolled back).
                let _ = answer_seen.recv_timeout(Duration::from_secs(30));
            }
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        if server.write_all(chunk).is_err() {
            return;
        }
    }
}

/// Server to client, dropping everything once the connection is severed (and saying when
/// something was dropped).
fn relay_answers(
    mut server: TcpStream,
    mut client: TcpStream,
    severed: &AtomicBool,
    answered: std::sync::mpsc::Sender<()>,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if severed.load(Ordering::SeqCst) {
            let _ = answered.send(());
            continue;
        }
        if client.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A commit whose answer is lost is settled by reading the shard's row: committed when the
/// server got the `COMMIT`, `Unavailable` (and nothing written) when it did not; never retried
/// blindly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_is_settled_by_reading() {
    let h = MariadbHarness::new();
    let cutter = CommitCutter::start(server().port);
    let options = MysqlOptions {
        connect_addr: format!("127.0.0.1:{}", cutter.port),
        ..h.options.clone()
    };
    let store = MysqlStore::open(&options).await.unwrap();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;

    let landed = key("landed", "run");
    cutter.arm(Cut::AfterCommit);
    store.commit(1, range, start_batch(&landed)).await.unwrap();
    assert!(cutter.disarmed(), "the COMMIT was cut");
    assert!(store.get_execution(1, &landed).await.unwrap().is_some());

    let lost = key("lost", "run");
    cutter.arm(Cut::BeforeCommit);
    let err = store
        .commit(1, range, start_batch(&lost))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(cutter.disarmed(), "the COMMIT was cut");
    assert_eq!(store.get_execution(1, &lost).await.unwrap(), None);
    // Nothing of it landed, so the same batch (its insert expects no row) commits now.
    store.commit(1, range, start_batch(&lost)).await.unwrap();
    assert_eq!(store.list_executions(1, 10).await.unwrap().len(), 2);
}
