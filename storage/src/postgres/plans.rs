//! Tests that the store's statements read only the rows they name, even when the tables have
//! grown far past what they held when a session planned them (as a new deployment's tables
//! do): sessions keep one plan per statement (prepared statements, and PL/pgSQL's own plans)
//! and plan generically (see `options::SESSION_OPTIONS`), so a plan made on a nearly empty
//! table must still go by key on a full one.

use std::collections::HashMap;

use deadpool_postgres::tokio_postgres::{Client, NoTls, SimpleQueryMessage};
use sundial_testdb::postgres::{PASSWORD, Server, USER};

use super::queues::DELETE_TASKS;
use super::{PostgresOptions, schema};

/// A private server with an empty database `name`, and a session on it.
pub(super) async fn private_session(name: &str) -> (Server, Client, PostgresOptions) {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<binary>: servers live in target/tmp.
    let target_tmp = exe.ancestors().nth(3).expect("inside target/").join("tmp");
    let server = tokio::task::block_in_place(|| Server::start(&target_tmp, name))
        .expect("private PostgreSQL server");
    let options = PostgresOptions {
        connect_addr: server.address(),
        database_name: name.to_string(),
        user: USER.to_string(),
        password: PASSWORD.to_string(),
        ..PostgresOptions::default()
    };
    schema::create_database(&options).await.unwrap();
    let (config, _) = options.connection(&options.database_name).unwrap();
    let (session, connection) = config.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    (server, session, options)
}

/// A private server with Sundial's schema in database `name`, and a session configured as
/// the store's, its tables' autovacuum off (so no statistics appear behind the test's back).
async fn fresh_session(name: &str) -> (Server, Client) {
    let (server, session, options) = private_session(name).await;
    schema::setup(&options).await.unwrap();
    let no_autovacuum: String = TABLES
        .iter()
        .map(|t| format!("ALTER TABLE {t} SET (autovacuum_enabled = false);"))
        .collect();
    session.batch_execute(&no_autovacuum).await.unwrap();
    (server, session)
}

const TABLES: [&str; 6] = [
    "executions",
    "current_executions",
    "history_node",
    "timer_tasks",
    "transfer_tasks",
    "tasks",
];

/// Per table, the rows `statement` read by sequential scans and fetched through indexes. It
/// runs in a transaction of its own, rolled back, so the tables keep their rows. A session's
/// counters hold what it has not reported yet, earlier transactions' too, so the reads are
/// the difference across the statement.
async fn reads(session: &Client, statement: &str) -> HashMap<String, (u64, u64)> {
    const STATISTICS: &str =
        "SELECT relname, seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables";
    let answer = session
        .simple_query(&format!(
            "BEGIN; {STATISTICS}; {statement}; {STATISTICS}; ROLLBACK"
        ))
        .await
        .unwrap();
    let mut readings: HashMap<String, Vec<(u64, u64)>> = HashMap::new();
    for message in &answer {
        let SimpleQueryMessage::Row(row) = message else {
            continue;
        };
        if row.len() != 3 {
            continue; // the statement's own answer
        }
        let (Some(table), Some(seq), Some(fetched)) = (row.get(0), row.get(1), row.get(2)) else {
            continue;
        };
        if TABLES.contains(&table) {
            let figures = (seq.parse().unwrap(), fetched.parse().unwrap());
            readings.entry(table.to_string()).or_default().push(figures);
        }
    }
    assert_eq!(readings.len(), TABLES.len(), "every table: {answer:?}");
    readings
        .into_iter()
        .map(|(table, figures)| {
            let [(seq_before, fetched_before), (seq_after, fetched_after)] = figures[..] else {
                panic!("{table}: two readings expected, got {figures:?}");
            };
            (
                table,
                (seq_after - seq_before, fetched_after - fetched_before),
            )
        })
        .collect()
}

/// Asserts that `statement` read no table sequentially and fetched at most `most` rows of
/// each through indexes.
async fn assert_reads_at_most(session: &Client, statement: &str, most: u64) {
    for (table, (seq, fetched)) in reads(session, statement).await {
        assert!(
            seq == 0 && fetched <= most,
            "{statement}\nread {seq} rows of {table} by sequential scan and fetched {fetched} \
             through indexes"
        );
    }
}

/// A call of `sundial_commit` on shard 1 (range 1) that goes through every statement of
/// the function: it updates `wf-{i}`'s rows, creates `new-{i}`'s, appends history,
/// writes and deletes tasks, and deletes the run of `wf-{i}` (last, as deletes go).
fn commit_call(i: i32) -> String {
    let texts = |items: &[&str]| {
        let quoted: Vec<String> = items.iter().map(|t| format!("'{t}'")).collect();
        format!("ARRAY[{}]::text[]", quoted.join(","))
    };
    let (new, old) = (format!("new-{i}"), format!("wf-{i}"));
    let pair = texts(&[&new, &old]);
    let ns2 = texts(&["ns", "ns"]);
    let runs2 = texts(&["run", "run"]);
    let blobs2 = "ARRAY['\\x01', '\\x01']::bytea[]";
    let arguments = [
        "1, 1, NULL".to_string(),
        // Conditions: wf-{i} exists, new-{i} does not.
        format!("{ns2}, {pair}, ARRAY[NULL, 'run']::text[]"),
        format!("{ns2}, {pair}, {runs2}, ARRAY[NULL, 1]::int8[]"),
        // Rows, sorted by key.
        format!("{ns2}, {pair}, {runs2}, {blobs2}, ARRAY[false, true]"),
        format!(
            "{ns2}, {pair}, {runs2}, {blobs2}, ARRAY[1, 2]::int8[], ARRAY[2, 3]::int8[], \
             ARRAY[false, true]"
        ),
        format!("{ns2}, {pair}, {runs2}, ARRAY[1, 1]::int8[], ARRAY[2, 2]::int8[], {blobs2}"),
        format!("ARRAY[{i}]::int8[], ARRAY['\\x01']::bytea[]"),
        format!(
            "ARRAY[{}]::int8[], ARRAY[{i}]::int8[], ARRAY['\\x01']::bytea[]",
            i + 100_000
        ),
        format!("ARRAY[{i}]::int8[]"),
        format!("ARRAY[{i}]::int8[], ARRAY[{i}]::int8[]"),
        format!("ARRAY['ns'], {}, ARRAY['run']", texts(&[&old])),
    ];
    format!("SELECT sundial_commit({})", arguments.join(", "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_read_only_the_rows_they_name() {
    let (_server, session) = fresh_session("commit_plans").await;
    let fill = |from: i32, to: i32| {
        format!(
            "INSERT INTO executions
                 (shard_id, namespace_id, workflow_id, run_id, state, db_version, next_event_id)
             SELECT 1, 'ns', 'wf-' || i, 'run', '\\x00', 1, 2 FROM generate_series({from}, {to}) i;
             INSERT INTO current_executions (shard_id, namespace_id, workflow_id, run_id, data)
             SELECT 1, 'ns', 'wf-' || i, 'run', '\\x00' FROM generate_series({from}, {to}) i;
             INSERT INTO history_node
                 (shard_id, namespace_id, workflow_id, run_id, first_event_id, txn_id, events)
             SELECT 1, 'ns', 'wf-' || i, 'run', 1, 1, '\\x00' FROM generate_series({from}, {to}) i;
             INSERT INTO timer_tasks (shard_id, fire_time_ms, task_id, data)
             SELECT 1, i, i, '\\x00' FROM generate_series({from}, {to}) i;
             INSERT INTO transfer_tasks (shard_id, task_id, data)
             SELECT 1, i, '\\x00' FROM generate_series({from}, {to}) i;"
        )
    };
    session
        .batch_execute(&format!(
            "INSERT INTO shards (shard_id, range_id, data) VALUES (1, 1, ''); {}",
            fill(1, 20)
        ))
        .await
        .unwrap();
    // Run many times on the small tables, as the store's sessions run it: past the five
    // custom plans after which a server may choose a generic plan and keep it.
    for i in 1..=10 {
        reads(&session, &commit_call(i)).await;
    }
    session.batch_execute(&fill(21, 3000)).await.unwrap();
    for i in 2990..=3000 {
        // A few rows each: the ones the call names, found once to lock or check and once to
        // change or delete.
        assert_reads_at_most(&session, &commit_call(i), 4).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_deletes_read_only_the_rows_they_name() {
    let (_server, session) = fresh_session("backlog_plans").await;
    let fill = |from: i32, to: i32| {
        format!(
            "INSERT INTO tasks (namespace_id, name, task_type, partition, task_id, data)
             SELECT 'ns', 'queue', 0, 0, i, '\\x00' FROM generate_series({from}, {to}) i"
        )
    };
    session
        .batch_execute(&format!(
            "INSERT INTO task_queues (namespace_id, name, task_type, partition, range_id)
             VALUES ('ns', 'queue', 0, 0, 1);
             {};
             PREPARE delete_tasks AS {DELETE_TASKS}",
            fill(1, 20)
        ))
        .await
        .unwrap();
    let delete = |i: i32| format!("EXECUTE delete_tasks('ns', 'queue', 0, 0, 1, ARRAY[{i}])");
    for i in 1..=10 {
        reads(&session, &delete(i)).await;
    }
    session.batch_execute(&fill(21, 3000)).await.unwrap();
    for i in 2990..=3000 {
        assert_reads_at_most(&session, &delete(i), 2).await;
    }
}
