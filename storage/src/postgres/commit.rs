//! A shard's batch, written in one transaction in two round trips: first `BEGIN`, the fence and
//! the row conditions (reads that lock), then every write and `COMMIT`.
//!
//! The fence reads the shard row with a lock: `FOR SHARE`, or, when the batch rewrites the
//! shard's data, the conditional `UPDATE` that writes it. Either way an `acquire_shard`
//! (an `UPDATE` of `range_id`) waits for this transaction and every later commit of the old
//! owner sees the new `range_id`. The rows named by conditions are locked `FOR UPDATE` (in key
//! order, so two commits never wait on each other in a cycle) and judged against the state
//! before the batch, as in memory; a row that must not exist is inserted, so a concurrent
//! insert of the same key fails on the primary key instead of being overwritten.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deadpool_postgres::tokio_postgres::Row;
use deadpool_postgres::{Object, Pool};

use super::pipeline::{Pipeline, params};
use super::transaction::WriteTransaction;
use super::{column, errors, pipeline};
use crate::{
    CurrentExecutionRow, Error, ExecutionKey, ExecutionRow, HistoryBatch, Result, ShardBatch,
    TimerTaskRow, TransferTaskRow,
};

const LOCK_SHARD: &str = "SELECT range_id, txid_current()::text || '@' || pg_postmaster_start_time()::text FROM shards WHERE shard_id = $1 FOR SHARE";
const UPDATE_SHARD: &str = "UPDATE shards SET data = $3 WHERE shard_id = $1 AND range_id = $2
     RETURNING range_id, txid_current()::text || '@' || pg_postmaster_start_time()::text";
const READ_RANGE: &str = "SELECT range_id FROM shards WHERE shard_id = $1";
// Statements that take keys in arrays look each key up in the primary key, one after another
// (a `LATERAL` subquery that cannot be flattened: it locks, or has `OFFSET 0`), so that a plan
// made once per session, whatever the table's statistics, cannot read other rows (see
// `options::SESSION_OPTIONS`). The arrays come sorted, so rows are locked in key order.
const LOCK_CURRENT: &str = "SELECT c.namespace_id, c.workflow_id, c.run_id
     FROM unnest($2::text[], $3::text[]) AS k(namespace_id, workflow_id)
     CROSS JOIN LATERAL (
         SELECT namespace_id, workflow_id, run_id FROM current_executions
         WHERE shard_id = $1 AND namespace_id = k.namespace_id AND workflow_id = k.workflow_id
         FOR UPDATE) c";
const LOCK_EXECUTIONS: &str = "SELECT e.namespace_id, e.workflow_id, e.run_id, e.db_version
     FROM unnest($2::text[], $3::text[], $4::text[]) AS k(namespace_id, workflow_id, run_id)
     CROSS JOIN LATERAL (
         SELECT namespace_id, workflow_id, run_id, db_version FROM executions
         WHERE shard_id = $1 AND namespace_id = k.namespace_id
           AND workflow_id = k.workflow_id AND run_id = k.run_id
         FOR UPDATE) e";
const INSERT_CURRENT: &str =
    "INSERT INTO current_executions (shard_id, namespace_id, workflow_id, run_id, data)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[])";
// Updates of rows the first round trip found and locked, as upserts: the primary key finds
// each row, there is no join to plan.
const UPDATE_CURRENT: &str =
    "INSERT INTO current_executions (shard_id, namespace_id, workflow_id, run_id, data)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[])
     ON CONFLICT (shard_id, namespace_id, workflow_id)
     DO UPDATE SET run_id = excluded.run_id, data = excluded.data";
const INSERT_EXECUTIONS: &str = "INSERT INTO executions
     (shard_id, namespace_id, workflow_id, run_id, state, db_version, next_event_id)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::int8[],
                              $7::int8[])";
const UPDATE_EXECUTIONS: &str = "INSERT INTO executions
     (shard_id, namespace_id, workflow_id, run_id, state, db_version, next_event_id)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[], $6::int8[],
                              $7::int8[])
     ON CONFLICT (shard_id, namespace_id, workflow_id, run_id)
     DO UPDATE SET state = excluded.state, db_version = excluded.db_version,
                   next_event_id = excluded.next_event_id";
// Same first event id: the write with the higher (or equal) txn_id wins.
const UPSERT_HISTORY: &str = "INSERT INTO history_node
     (shard_id, namespace_id, workflow_id, run_id, first_event_id, txn_id, events)
     SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[],
                              $7::bytea[])
     ON CONFLICT (shard_id, namespace_id, workflow_id, run_id, first_event_id)
     DO UPDATE SET txn_id = excluded.txn_id, events = excluded.events
     WHERE excluded.txn_id >= history_node.txn_id";
const UPSERT_TRANSFER: &str = "INSERT INTO transfer_tasks (shard_id, task_id, data)
     SELECT $1, * FROM unnest($2::int8[], $3::bytea[])
     ON CONFLICT (shard_id, task_id) DO UPDATE SET data = excluded.data";
const UPSERT_TIMERS: &str = "INSERT INTO timer_tasks (shard_id, fire_time_ms, task_id, data)
     SELECT $1, * FROM unnest($2::int8[], $3::int8[], $4::bytea[])
     ON CONFLICT (shard_id, fire_time_ms, task_id) DO UPDATE SET data = excluded.data";
const DELETE_TRANSFER: &str =
    "DELETE FROM transfer_tasks WHERE shard_id = $1 AND task_id = ANY($2::int8[])";
// Deletes find their rows' ids (ctid) by key first: the rows the owner of the shard wrote,
// which nobody else changes meanwhile.
const DELETE_TIMERS: &str = "DELETE FROM timer_tasks WHERE ctid = ANY(ARRAY(
     SELECT t.ctid FROM unnest($2::int8[], $3::int8[]) AS k(fire_time_ms, task_id)
     CROSS JOIN LATERAL (
         SELECT ctid FROM timer_tasks
         WHERE shard_id = $1 AND fire_time_ms = k.fire_time_ms AND task_id = k.task_id
         OFFSET 0) t))";
/// Deletes the rows of `$table` of the runs whose keys are in `$2` to `$4`.
macro_rules! delete_runs {
    ($table:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE ctid = ANY(ARRAY(
                 SELECT r.ctid FROM unnest($2::text[], $3::text[], $4::text[])
                     AS k(namespace_id, workflow_id, run_id)
                 CROSS JOIN LATERAL (
                     SELECT ctid FROM ",
            $table,
            " WHERE shard_id = $1 AND namespace_id = k.namespace_id
                       AND workflow_id = k.workflow_id AND run_id = k.run_id
                     OFFSET 0) r))"
        )
    };
}
const DELETE_EXECUTIONS: &str = delete_runs!("executions");
const DELETE_HISTORY: &str = delete_runs!("history_node");
const DELETE_CURRENT: &str = delete_runs!("current_executions");

/// Fences, checks and writes `batch` in one transaction on `client`, and commits it.
pub(super) async fn commit_batch(
    client: Object,
    pool: &Pool,
    shard_id: i32,
    expected_range_id: i64,
    batch: ShardBatch,
) -> Result<()> {
    // Round trip 1: BEGIN, the fence and the rows the conditions name, locked.
    let mut reads = Pipeline::default();
    match &batch.shard_data {
        Some(data) => reads.push(
            UPDATE_SHARD,
            params![shard_id, expected_range_id, data.clone()],
        ),
        None => reads.push(LOCK_SHARD, params![shard_id]),
    }
    if !batch.current_executions.is_empty() {
        let keys: BTreeSet<(&str, &str)> = batch
            .current_executions
            .iter()
            .map(|w| (w.row.namespace_id.as_str(), w.row.workflow_id.as_str()))
            .collect();
        let (ns, wf): (Vec<String>, Vec<String>) = keys
            .into_iter()
            .map(|(ns, wf)| (ns.to_string(), wf.to_string()))
            .unzip();
        reads.push(LOCK_CURRENT, params![shard_id, ns, wf]);
    }
    if !batch.executions.is_empty() {
        let keys: BTreeSet<&ExecutionKey> = batch.executions.iter().map(|w| &w.row.key).collect();
        let (ns, wf, run) = key_columns(keys.into_iter());
        reads.push(LOCK_EXECUTIONS, params![shard_id, ns, wf, run]);
    }
    let (tx, answers) = WriteTransaction::begin(client, reads)
        .await
        .map_err(errors::statement)?;
    let mut answers = answers.into_iter();

    let fence = answers.next().unwrap_or_default();
    let xid = match fence.first() {
        Some(row) => {
            let range_id: i64 = column(row, 0)?;
            if range_id != expected_range_id {
                return Err(lost(shard_id, expected_range_id, range_id));
            }
            column(row, 1)?
        }
        None => {
            // No row (never acquired), or the conditional update found another range_id.
            let actual = match batch.shard_data {
                Some(_) => tx
                    .client()
                    .query_opt(READ_RANGE, &[&shard_id])
                    .await
                    .map_err(errors::statement)?
                    .map(|row| column(&row, 0))
                    .transpose()?
                    .unwrap_or(0),
                None => 0,
            };
            return Err(lost(shard_id, expected_range_id, actual));
        }
    };

    let stored_current: HashMap<(String, String), String> =
        match batch.current_executions.is_empty() {
            true => HashMap::new(),
            false => rows(answers.next(), |row| {
                Ok(((column(row, 0)?, column(row, 1)?), column(row, 2)?))
            })?,
        };
    for w in &batch.current_executions {
        let key = (w.row.namespace_id.clone(), w.row.workflow_id.clone());
        let stored = stored_current.get(&key).map(String::as_str);
        if stored != w.expected_run_id.as_deref() {
            return Err(Error::ConditionFailed(format!(
                "current run of {}: expected {:?}, found {:?}",
                w.row.workflow_id, w.expected_run_id, stored
            )));
        }
    }
    let stored_versions: HashMap<ExecutionKey, i64> = match batch.executions.is_empty() {
        true => HashMap::new(),
        false => rows(answers.next(), |row| {
            let key = ExecutionKey {
                namespace_id: column(row, 0)?,
                workflow_id: column(row, 1)?,
                run_id: column(row, 2)?,
            };
            Ok((key, column(row, 3)?))
        })?,
    };
    for w in &batch.executions {
        let stored = stored_versions.get(&w.row.key).copied();
        if stored != w.expected_db_version {
            return Err(Error::ConditionFailed(format!(
                "execution {}/{}: expected db_version {:?}, found {:?}",
                w.row.key.workflow_id, w.row.key.run_id, w.expected_db_version, stored
            )));
        }
    }

    // Round trip 2: every write, in the order the memory backend applies them, and COMMIT.
    let writes = writes(shard_id, batch, &stored_current, &stored_versions);
    tx.commit(writes, xid, pool, |e| {
        if errors::is_unique_violation(&e) {
            let detail = e.as_db_error().and_then(|db| db.detail()).unwrap_or("");
            Error::ConditionFailed(format!("a row this batch creates exists already: {detail}"))
        } else {
            errors::statement(e)
        }
    })
    .await
}

fn lost(shard_id: i32, expected: i64, actual: i64) -> Error {
    Error::ShardOwnershipLost {
        shard_id,
        expected,
        actual,
    }
}

/// The rows of one pipelined answer, mapped.
fn rows<K: std::hash::Hash + Eq, V>(
    answer: Option<Vec<Row>>,
    f: impl Fn(&Row) -> Result<(K, V)>,
) -> Result<HashMap<K, V>> {
    answer.unwrap_or_default().iter().map(f).collect()
}

/// The statements that write `batch`, conditions already checked against `stored_*` (the
/// rows as they were before the batch). Later writes of one key replace earlier ones.
fn writes(
    shard_id: i32,
    batch: ShardBatch,
    stored_current: &HashMap<(String, String), String>,
    stored_versions: &HashMap<ExecutionKey, i64>,
) -> Pipeline {
    let mut writes = Pipeline::default();

    let mut current = BTreeMap::new();
    for w in batch.current_executions {
        current.insert(
            (w.row.namespace_id.clone(), w.row.workflow_id.clone()),
            w.row,
        );
    }
    let (updates, inserts): (Vec<_>, Vec<_>) = current
        .into_iter()
        .partition(|(key, _)| stored_current.contains_key(key));
    for (sql, rows) in [(UPDATE_CURRENT, updates), (INSERT_CURRENT, inserts)] {
        if !rows.is_empty() {
            let rows: Vec<CurrentExecutionRow> = rows.into_iter().map(|(_, row)| row).collect();
            writes.push(sql, current_params(shard_id, rows));
        }
    }

    let mut executions = BTreeMap::new();
    for w in batch.executions {
        executions.insert(w.row.key.clone(), w.row);
    }
    let (updates, inserts): (Vec<_>, Vec<_>) = executions
        .into_values()
        .partition(|row| stored_versions.contains_key(&row.key));
    for (sql, rows) in [(UPDATE_EXECUTIONS, updates), (INSERT_EXECUTIONS, inserts)] {
        if !rows.is_empty() {
            writes.push(sql, execution_params(shard_id, rows));
        }
    }

    // One upsert cannot touch a row twice: keep, per run and first event id, what applying
    // the batch's appends one by one would leave (a later one wins unless its txn_id is lower).
    let mut history: BTreeMap<(ExecutionKey, i64), HistoryBatch> = BTreeMap::new();
    for h in batch.history {
        let slot = history.entry((h.key, h.batch.first_event_id));
        match slot {
            std::collections::btree_map::Entry::Occupied(mut e) => {
                if e.get().txn_id <= h.batch.txn_id {
                    e.insert(h.batch);
                }
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(h.batch);
            }
        }
    }
    if !history.is_empty() {
        writes.push(UPSERT_HISTORY, history_params(shard_id, history));
    }

    let transfer: BTreeMap<i64, TransferTaskRow> = batch
        .transfer_tasks
        .into_iter()
        .map(|t| (t.task_id, t))
        .collect();
    if !transfer.is_empty() {
        let (ids, data): (Vec<i64>, Vec<Vec<u8>>) =
            transfer.into_values().map(|t| (t.task_id, t.data)).unzip();
        writes.push(UPSERT_TRANSFER, params![shard_id, ids, data]);
    }
    let timers: BTreeMap<(i64, i64), TimerTaskRow> = batch
        .timer_tasks
        .into_iter()
        .map(|t| ((t.fire_time_ms, t.task_id), t))
        .collect();
    if !timers.is_empty() {
        let mut fire = Vec::with_capacity(timers.len());
        let mut ids = Vec::with_capacity(timers.len());
        let mut data = Vec::with_capacity(timers.len());
        for t in timers.into_values() {
            fire.push(t.fire_time_ms);
            ids.push(t.task_id);
            data.push(t.data);
        }
        writes.push(UPSERT_TIMERS, params![shard_id, fire, ids, data]);
    }
    if !batch.delete_transfer_tasks.is_empty() {
        writes.push(
            DELETE_TRANSFER,
            params![shard_id, batch.delete_transfer_tasks],
        );
    }
    if !batch.delete_timer_tasks.is_empty() {
        let (fire, ids): (Vec<i64>, Vec<i64>) = batch.delete_timer_tasks.into_iter().unzip();
        writes.push(DELETE_TIMERS, params![shard_id, fire, ids]);
    }
    if !batch.delete_executions.is_empty() {
        for sql in [DELETE_EXECUTIONS, DELETE_HISTORY, DELETE_CURRENT] {
            let (ns, wf, run) = key_columns(batch.delete_executions.iter());
            writes.push(sql, params![shard_id, ns, wf, run]);
        }
    }
    writes
}

/// Run keys as three text arrays.
fn key_columns<'a>(
    keys: impl Iterator<Item = &'a ExecutionKey>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ns, mut wf, mut run) = (Vec::new(), Vec::new(), Vec::new());
    for k in keys {
        ns.push(k.namespace_id.clone());
        wf.push(k.workflow_id.clone());
        run.push(k.run_id.clone());
    }
    (ns, wf, run)
}

fn current_params(shard_id: i32, rows: Vec<CurrentExecutionRow>) -> Vec<pipeline::Param> {
    let (mut ns, mut wf, mut run, mut data) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in rows {
        ns.push(r.namespace_id);
        wf.push(r.workflow_id);
        run.push(r.run_id);
        data.push(r.data);
    }
    params![shard_id, ns, wf, run, data]
}

fn execution_params(shard_id: i32, rows: Vec<ExecutionRow>) -> Vec<pipeline::Param> {
    let (mut state, mut version, mut next) = (Vec::new(), Vec::new(), Vec::new());
    let (ns, wf, run) = key_columns(rows.iter().map(|r| &r.key));
    for r in rows {
        state.push(r.state);
        version.push(r.db_version);
        next.push(r.next_event_id);
    }
    params![shard_id, ns, wf, run, state, version, next]
}

fn history_params(
    shard_id: i32,
    history: BTreeMap<(ExecutionKey, i64), HistoryBatch>,
) -> Vec<pipeline::Param> {
    let (ns, wf, run) = key_columns(history.keys().map(|(key, _)| key));
    let (mut first, mut txn, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for batch in history.into_values() {
        first.push(batch.first_event_id);
        txn.push(batch.txn_id);
        events.push(batch.events);
    }
    params![shard_id, ns, wf, run, first, txn, events]
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use deadpool_postgres::tokio_postgres::{Client, NoTls, SimpleQueryMessage};
    use sundial_testdb::postgres::{PASSWORD, Server, USER};

    use super::*;
    use crate::postgres::{PostgresOptions, schema};

    /// `target/tmp`, next to the test binary's profile directory.
    fn target_tmp() -> PathBuf {
        let exe = std::env::current_exe().expect("test binary path");
        // target/<profile>/deps/<binary>
        exe.ancestors().nth(3).expect("inside target/").join("tmp")
    }

    /// A session configured as the store's, on `options`' database.
    async fn store_session(options: &PostgresOptions) -> Client {
        let (config, _) = options.connection(&options.database_name).unwrap();
        let (client, connection) = config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// The most rows one scan of `table` in an `EXPLAIN (ANALYZE, FORMAT JSON)` plan read
    /// in one loop: those it returned plus those its filter removed.
    fn rows_read(plan: &serde_json::Value, table: &str) -> u64 {
        let own = if plan["Relation Name"] == table && plan["Node Type"] != "ModifyTable" {
            [
                "Actual Rows",
                "Rows Removed by Filter",
                "Rows Removed by Index Recheck",
            ]
            .iter()
            .filter_map(|figure| plan[figure].as_u64())
            .sum()
        } else {
            0
        };
        plan["Plans"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| rows_read(p, table))
            .fold(own, u64::max)
    }

    /// The statements that name rows by arrays read only those rows, even when the table has
    /// grown far past what it held when the session planned them (as a new deployment's
    /// tables do). Each statement runs as the store runs it: prepared once, executed many
    /// times.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn array_lookups_read_only_the_rows_they_name() {
        let server = tokio::task::block_in_place(|| Server::start(&target_tmp(), "plans"))
            .expect("private PostgreSQL server");
        let options = PostgresOptions {
            connect_addr: server.address(),
            database_name: "plans".to_string(),
            user: USER.to_string(),
            password: PASSWORD.to_string(),
            ..PostgresOptions::default()
        };
        schema::create_database(&options).await.unwrap();
        schema::setup(&options).await.unwrap();
        let session = store_session(&options).await;
        // A new deployment: the store's sessions plan their statements while the tables are
        // nearly empty (no statistics yet), then the tables grow.
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
                 SELECT 1, i, i, '\\x00' FROM generate_series({from}, {to}) i;"
            )
        };
        session
            .batch_execute(&format!(
                "ALTER TABLE executions SET (autovacuum_enabled = false);
                 ALTER TABLE current_executions SET (autovacuum_enabled = false);
                 ALTER TABLE history_node SET (autovacuum_enabled = false);
                 ALTER TABLE timer_tasks SET (autovacuum_enabled = false);
                 {}",
                fill(1, 20)
            ))
            .await
            .unwrap();

        // Each argument list names one run of shard 1, as a single-workflow commit does.
        let run = |i: i32| format!("ARRAY['ns'], ARRAY['wf-{i}'], ARRAY['run']");
        let statements = [
            (
                LOCK_CURRENT,
                "current_executions",
                "1, ARRAY['ns'], ARRAY['wf-{i}']",
            ),
            (
                UPDATE_CURRENT,
                "current_executions",
                "1, {run}, ARRAY['\\x01'::bytea]",
            ),
            (LOCK_EXECUTIONS, "executions", "1, {run}"),
            (
                UPDATE_EXECUTIONS,
                "executions",
                "1, {run}, ARRAY['\\x01'::bytea], ARRAY[2::int8], ARRAY[3::int8]",
            ),
            (DELETE_EXECUTIONS, "executions", "1, {run}"),
            (DELETE_CURRENT, "current_executions", "1, {run}"),
            (DELETE_HISTORY, "history_node", "1, {run}"),
            (
                DELETE_TIMERS,
                "timer_tasks",
                "1, ARRAY[{i}::int8], ARRAY[{i}::int8]",
            ),
        ];
        // Prepared once and run many times, as the store's sessions run them: past the five
        // custom plans after which the server may choose a generic plan and keep it.
        let explain = |n: usize, args: &str, i: i32| {
            let args = args
                .replace("{run}", &run(i))
                .replace("{i}", &i.to_string());
            format!("BEGIN; EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE s{n}({args}); ROLLBACK")
        };
        for (n, (sql, _, args)) in statements.iter().enumerate() {
            session
                .batch_execute(&format!("PREPARE s{n} AS {sql}"))
                .await
                .unwrap();
            for i in 1..=10 {
                session.batch_execute(&explain(n, args, i)).await.unwrap();
            }
        }
        session.batch_execute(&fill(21, 3000)).await.unwrap();
        for (n, (sql, table, args)) in statements.into_iter().enumerate() {
            for i in 2990..=3000 {
                let answer = session.simple_query(&explain(n, args, i)).await.unwrap();
                let text = answer
                    .iter()
                    .find_map(|m| match m {
                        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
                        _ => None,
                    })
                    .expect("a plan");
                let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
                let read = rows_read(&plan[0]["Plan"], table);
                assert!(
                    read <= 1,
                    "execution {i} of {sql} read {read} rows of {table} to find one: {plan:#}"
                );
            }
        }
    }
}
