//! PostgreSQL-only behaviour, against the private server: schema commands and the refusals of
//! `open`, connection failures, server restarts, and a `COMMIT` whose answer is lost.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::thread;
use std::time::Duration;

use deadpool_postgres::tokio_postgres::{self, Client};
use sundial_storage::postgres::{PostgresOptions, PostgresStore, schema};
use sundial_storage::{
    Error, ExecutionReader, ShardBatch, ShardStore, Store, TaskQueueStore, TransferTaskRow,
};

use super::postgres::{Server, block_on, server};
use super::{Harness, PostgresHarness, execution, key, start_batch};

fn open_error(options: &PostgresOptions) -> Error {
    match block_on(PostgresStore::open(options)) {
        Ok(_) => panic!("open of {} should fail", options.database_name),
        Err(e) => e,
    }
}

/// A raw connection to the server, for what the store never does (damaging a schema, holding
/// locks, counting connections).
pub(super) async fn admin_client(options: &PostgresOptions) -> Client {
    let mut config = tokio_postgres::Config::new();
    let (host, port) = options.connect_addr.split_once(':').unwrap();
    config
        .host(host)
        .port(port.parse().unwrap())
        .user(&options.user)
        .password(&options.password)
        .dbname(&options.database_name)
        .application_name("conformance-admin");
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn admin(options: &PostgresOptions, sql: &str) {
    admin_client(options)
        .await
        .batch_execute(sql)
        .await
        .unwrap();
}

/// How many connections the store has open to its database.
async fn store_connections(admin: &Client, options: &PostgresOptions) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'sundial'",
            &[&options.database_name],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits until the store has `want` connections open, for at most 10 seconds.
async fn until_store_connections(admin: &Client, options: &PostgresOptions, want: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = store_connections(admin, options).await;
        if open == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store keeps {open} connections open, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_commands_and_the_refusals_of_open() {
    let options = server().fresh_options();
    // A missing database: the message says how to create it.
    let err = open_error(&options);
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("sundial schema setup"), "{err}");
    assert!(schema::create_database(&options).await.unwrap());
    assert!(
        !schema::create_database(&options).await.unwrap(),
        "exists now"
    );

    // Empty: `setup` fixes it.
    assert_eq!(schema::version(&options).await.unwrap(), None);
    let err = open_error(&options);
    assert!(err.to_string().contains("`sundial schema setup`"), "{err}");
    assert!(err.to_string().contains(&options.connect_addr), "{err}");
    schema::setup(&options).await.unwrap();
    assert_eq!(
        schema::version(&options).await.unwrap(),
        Some(schema::CURRENT_VERSION)
    );
    let err = schema::setup(&options).await.unwrap_err();
    assert!(err.to_string().contains("already has"), "{err}");
    let store = PostgresStore::open(&options).await.unwrap();
    store.acquire_shard(1, "owner-a").await.unwrap();
    drop(store);

    // Older: `update` fixes it, and an up-to-date schema is left alone.
    admin(&options, "UPDATE schema_version SET version = 0").await;
    let err = open_error(&options);
    assert!(err.to_string().contains("`sundial schema update`"), "{err}");
    admin(
        &options,
        "DROP TABLE shards, executions, current_executions, history_node, transfer_tasks,
                timer_tasks, namespaces, task_queues, tasks, cluster_metadata,
                executions_visibility, cluster_membership;
         DROP FUNCTION sundial_commit",
    )
    .await;
    assert_eq!(schema::update(&options).await.unwrap(), 0);
    assert_eq!(
        schema::update(&options).await.unwrap(),
        schema::CURRENT_VERSION
    );
    PostgresStore::open(&options).await.unwrap();

    // A schema of the first release (tables, no commit function) is brought up to date, and
    // the store commits on it.
    admin(
        &options,
        "UPDATE schema_version SET version = 1; DROP FUNCTION sundial_commit;
         DROP TABLE cluster_metadata, executions_visibility, cluster_membership;
         ALTER TABLE shards DROP COLUMN owner",
    )
    .await;
    assert_eq!(schema::update(&options).await.unwrap(), 1);
    let store = PostgresStore::open(&options).await.unwrap();
    let shard = store.acquire_shard(1, "owner-a").await.unwrap();
    store
        .commit(
            1,
            shard.range_id,
            ShardBatch {
                shard_data: Some(b"after the update".to_vec()),
                ..ShardBatch::default()
            },
        )
        .await
        .unwrap();

    // Newer: refused, nothing to run.
    admin(&options, "UPDATE schema_version SET version = version + 1").await;
    let err = open_error(&options);
    assert!(err.to_string().contains("newer"), "{err}");
    assert!(schema::update(&options).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_setup_creates_the_database_and_schema() {
    let options = server().fresh_options();
    let store = PostgresStore::open_with_auto_setup(&options).await.unwrap();
    assert_eq!(store.acquire_shard(1, "owner-a").await.unwrap().range_id, 1);
    drop(store);
    // Again: nothing to do, the data stays.
    let store = PostgresStore::open_with_auto_setup(&options).await.unwrap();
    assert_eq!(store.acquire_shard(1, "owner-a").await.unwrap().range_id, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_unreachable_servers_are_clear_errors() {
    let harness = PostgresHarness::new();
    let mut wrong = harness.options().clone();
    wrong.password = "not-the-password".to_string();
    let err = open_error(&wrong);
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );

    // Nothing listens on the port of a dropped listener.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let mut unreachable = harness.options().clone();
    unreachable.connect_addr = format!("127.0.0.1:{port}");
    let err = open_error(&unreachable);
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains(&unreachable.connect_addr), "{err}");

    let mut tls = harness.options().clone();
    tls.tls.enabled = true;
    // This server has no TLS: a store that asks for it does not fall back to plain text.
    let err = open_error(&tls);
    assert!(
        err.to_string().contains("server does not support TLS"),
        "{err}"
    );
}

/// Calls that meet a restarting server fail with `Unavailable` (never an unknown outcome for
/// work that was not sent), later calls succeed on new connections, and every acknowledged
/// commit survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restarts_are_unavailable_then_heal() {
    let server = tokio::task::block_in_place(|| Server::start("restarts"));
    let options = server.fresh_options();
    schema::create_database(&options).await.unwrap();
    schema::setup(&options).await.unwrap();
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&options).await.unwrap());
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let mut acknowledged = Vec::new();
    for (round, mode) in ["fast", "immediate"].into_iter().enumerate() {
        let k = key(&format!("before-{mode}"), "run");
        store.commit(1, range, start_batch(&k)).await.unwrap();
        acknowledged.push(k);
        tokio::task::block_in_place(|| server.restart(mode));
        // The pool still holds connections to the old server; each call either notices and
        // reconnects, or fails as retryable. It must succeed within a bounded number of tries.
        let k = key(&format!("after-{mode}"), "run");
        let mut failures = 0;
        loop {
            let batch = ShardBatch {
                transfer_tasks: vec![TransferTaskRow {
                    task_id: round as i64,
                    data: vec![],
                }],
                ..start_batch(&k)
            };
            match store.commit(1, range, batch).await {
                Ok(()) => break,
                Err(Error::Unavailable(_)) if failures < 20 => failures += 1,
                Err(e) => panic!("commit after a {mode} restart: {e:?}"),
            }
        }
        acknowledged.push(k);
    }
    for k in &acknowledged {
        assert_eq!(
            store.get_execution(1, k).await.unwrap(),
            Some(execution(k, 1))
        );
    }
    assert_eq!(store.list_transfer_tasks(1, -1, 10).await.unwrap().len(), 2);
}

/// What the proxy does to the next `COMMIT` a client sends.
const PASS: u8 = 0;
/// Forward it (and what came with it), then hang up on the client, and let the server read to
/// the end: the server commits, the client never hears.
const CUT_AFTER_COMMIT: u8 = 1;
/// Hang up on both instead of forwarding it: the server rolls back.
const CUT_BEFORE_COMMIT: u8 = 2;

/// The simple-query message `COMMIT` as tokio-postgres sends it.
const COMMIT_MESSAGE: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

/// A TCP proxy in front of the server that can cut a connection at its next `COMMIT`.
fn commit_cutting_proxy(server_port: u16, mode: Arc<AtomicU8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", server_port)) else {
                return;
            };
            let (client_in, upstream_out) =
                (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            thread::spawn(move || answers(upstream, client));
            let mode = mode.clone();
            thread::spawn(move || requests(client_in, upstream_out, &mode));
        }
    });
    port
}

/// Copies the server's answers to the client; once the client is gone, reads the rest to the
/// end so the server can finish what it was sent.
fn answers(mut server: TcpStream, mut client: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut client_gone = false;
    while let Ok(n) = server.read(&mut buf) {
        if n == 0 {
            break;
        }
        client_gone = client_gone || client.write_all(&buf[..n]).is_err();
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// Copies the client's requests to the server, acting on the first `COMMIT` when armed.
fn requests(mut client: TcpStream, mut server: TcpStream, mode: &AtomicU8) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let commit = chunk
            .windows(COMMIT_MESSAGE.len())
            .any(|w| w == COMMIT_MESSAGE);
        match if commit {
            mode.swap(PASS, Ordering::SeqCst)
        } else {
            PASS
        } {
            CUT_AFTER_COMMIT => {
                // The client's side goes first, so no part of the answer can reach it.
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.write_all(chunk);
                // The server reads the end of the stream after what it was sent.
                let _ = server.shutdown(Shutdown::Write);
                return;
            }
            CUT_BEFORE_COMMIT => break,
            _ => {
                if server.write_all(chunk).is_err() {
                    break;
                }
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// A `COMMIT` whose answer is lost is settled by reading the transaction's status: the one
/// the server received is reported committed (and its writes are there), the one it never got
/// is reported `Unavailable` (and nothing of it is there). Either way the store goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_answer_is_settled_by_reading() {
    let harness = PostgresHarness::new();
    let mode = Arc::new(AtomicU8::new(PASS));
    let proxy = commit_cutting_proxy(server().port(), mode.clone());
    let mut options = harness.options().clone();
    options.connect_addr = format!("127.0.0.1:{proxy}");
    let store = PostgresStore::open(&options).await.unwrap();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;

    let landed = key("wf", "committed");
    mode.store(CUT_AFTER_COMMIT, Ordering::SeqCst);
    store.commit(1, range, start_batch(&landed)).await.unwrap();
    assert_eq!(mode.load(Ordering::SeqCst), PASS, "the proxy cut a COMMIT");
    assert_eq!(
        store.get_execution(1, &landed).await.unwrap(),
        Some(execution(&landed, 1))
    );

    let lost = key("wf-2", "rolled-back");
    mode.store(CUT_BEFORE_COMMIT, Ordering::SeqCst);
    let err = store
        .commit(1, range, start_batch(&lost))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert_eq!(store.get_execution(1, &lost).await.unwrap(), None);

    // The same holds for the other writes: here a partition lease. The call right after a
    // cut must not get the cut connection from the pool (the driver may not have seen it end
    // yet), so this is tried a few times.
    let q = super::queue("orders", 1, 0);
    for lease in (1..=10).step_by(2) {
        mode.store(CUT_AFTER_COMMIT, Ordering::SeqCst);
        assert_eq!(store.lease_task_queue(&q).await.unwrap(), lease);
        assert_eq!(store.lease_task_queue(&q).await.unwrap(), lease + 1);
    }
    store.commit(1, range, start_batch(&lost)).await.unwrap();
}

/// `maxConns` bounds the connections, idle ones past `maxIdleConns` are closed, and so are
/// connections older than `maxConnLifetime`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_limits_are_honoured() {
    let harness = PostgresHarness::new();
    let mut options = harness.options().clone();
    options.max_conns = 4;
    options.max_idle_conns = 1;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&options).await.unwrap());
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    // Hold the shard row so that commits wait, each on a connection of its own.
    let mut admin = admin_client(&options).await;
    let blocker = admin.transaction().await.unwrap();
    blocker
        .execute("SELECT 1 FROM shards WHERE shard_id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    let commits: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let batch = ShardBatch {
                    transfer_tasks: vec![TransferTaskRow {
                        task_id: i,
                        data: vec![],
                    }],
                    ..ShardBatch::default()
                };
                store.commit(1, range, batch).await
            })
        })
        .collect();
    let watcher = admin_client(&options).await;
    until_store_connections(&watcher, &options, 4).await;
    blocker.commit().await.unwrap();
    for commit in commits {
        commit.await.unwrap().unwrap();
    }
    assert!(store_connections(&watcher, &options).await <= 4);
    until_store_connections(&watcher, &options, 1).await;
    drop(store);

    let mut options = harness.options().clone();
    options.max_conn_lifetime = Duration::from_millis(500);
    let store = PostgresStore::open(&options).await.unwrap();
    // The connection this opens is closed once it is older than the limit, store or no call.
    store.acquire_shard(2, "owner-a").await.unwrap();
    until_store_connections(&watcher, &options, 0).await;
    assert_eq!(store.acquire_shard(2, "owner-a").await.unwrap().range_id, 2);
}

/// The state of the store's one connection (`pg_stat_activity.state`, `wait_event_type`).
async fn store_session(admin: &Client, options: &PostgresOptions) -> Option<(String, String)> {
    let rows = admin
        .query(
            "SELECT state, coalesce(wait_event_type, '') FROM pg_stat_activity
             WHERE datname = $1 AND application_name = 'sundial'",
            &[&options.database_name],
        )
        .await
        .unwrap();
    rows.first().map(|row| (row.get(0), row.get(1)))
}

/// Waits until `pred` holds for the store's session, for at most 10 seconds.
async fn until_session(
    admin: &Client,
    options: &PostgresOptions,
    what: &str,
    pred: impl Fn(&(String, String)) -> bool,
) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let session = store_session(admin, options).await;
        if session.as_ref().is_some_and(&pred) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store's session never became {what}: {session:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A commit whose caller goes away mid-transaction is rolled back before its connection is
/// used again: the next call does not run inside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_commit_is_rolled_back_before_its_connection_is_reused() {
    let harness = PostgresHarness::new();
    let mut options = harness.options().clone();
    options.max_conns = 1;
    let store: Arc<dyn Store> = Arc::new(PostgresStore::open(&options).await.unwrap());
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let mut admin = admin_client(&options).await;
    let watcher = admin_client(&options).await;
    let blocker = admin.transaction().await.unwrap();
    blocker
        .execute("SELECT 1 FROM shards WHERE shard_id = 1 FOR UPDATE", &[])
        .await
        .unwrap();
    let abandoned = key("wf", "abandoned");
    let commit = tokio::spawn({
        let (store, k) = (store.clone(), abandoned.clone());
        async move { store.commit(1, range, start_batch(&k)).await }
    });
    until_session(&watcher, &options, "waiting on the lock", |(_, wait)| {
        wait == "Lock"
    })
    .await;
    commit.abort();
    assert!(commit.await.unwrap_err().is_cancelled());
    blocker.commit().await.unwrap();
    until_session(
        &watcher,
        &options,
        "idle outside a transaction",
        |(state, _)| state == "idle",
    )
    .await;

    let next = key("wf", "next");
    store.commit(1, range, start_batch(&next)).await.unwrap();
    assert_eq!(store.get_execution(1, &abandoned).await.unwrap(), None);
    assert_eq!(
        store.get_execution(1, &next).await.unwrap(),
        Some(execution(&next, 1))
    );
}

#[test]
fn pool_options_are_validated_before_connecting() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = PostgresOptions {
        connect_addr: "127.0.0.1:1".to_string(),
        database_name: "sundial".to_string(),
        user: "sundial".to_string(),
        max_conn_lifetime: Duration::from_secs(60),
        connect_attributes: [("sslmode".to_string(), "verify-full".to_string())].into(),
        ..PostgresOptions::default()
    };
    let err = runtime
        .block_on(PostgresStore::open(&options))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("connectAttributes.sslmode"),
        "{err}"
    );
}
