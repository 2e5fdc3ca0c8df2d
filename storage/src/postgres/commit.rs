//! A shard's batch, written in one transaction in two round trips: `BEGIN` and one call of
//! `sundial_commit` (schema migration 2, in `schema.rs`), which fences, checks and writes the
//! whole batch; then its visibility records and `COMMIT`. The call answers the transaction's id, so a `COMMIT` whose
//! answer is lost is settled by asking the server (`errors::settle`).
//!
//! The fence reads the shard row with a lock: `FOR SHARE`, or, when the batch rewrites the
//! shard's data, the conditional `UPDATE` that writes it. Either way an `acquire_shard`
//! (an `UPDATE` of `range_id`) waits for this transaction and every later commit of the old
//! owner sees the new `range_id`. The rows named by conditions are locked `FOR UPDATE` (in key
//! order, so two commits never wait on each other in a cycle) and judged against the state
//! before the batch, as in memory; a row that must not exist is inserted, so a concurrent
//! insert of the same key fails on the primary key instead of being overwritten. A condition
//! that fails raises an error of its own SQLSTATE, which [`Conditions::refused`] turns back
//! into the store's error.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use deadpool_postgres::tokio_postgres;
use deadpool_postgres::{Object, Pool};

use super::pipeline::{Pipeline, params};
use super::transaction::WriteTransaction;
use super::{column, errors, pipeline, visibility};
use crate::{
    CurrentExecutionRow, Error, ExecutionKey, ExecutionRow, HistoryBatch, Result, ShardBatch,
    TimerTaskRow, TransferTaskRow,
};

const COMMIT: &str = "SELECT sundial_commit($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
     $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30,
     $31, $32, $33, $34, $35, $36, $37, $38, $39)";

/// SQLSTATEs `sundial_commit` raises: the shard is owned under another `range_id`; a
/// current-run condition failed; a `db_version` condition failed.
const OWNERSHIP_LOST: &str = "SD001";
const CURRENT_CONDITION: &str = "SD002";
const VERSION_CONDITION: &str = "SD003";

/// Fences, checks and writes `batch` in one transaction on `client`, and commits it.
pub(super) async fn commit_batch(
    client: Object,
    pool: &Pool,
    shard_id: i32,
    expected_range_id: i64,
    batch: ShardBatch,
) -> Result<()> {
    // Visibility records ride in the round trip of the `COMMIT`, after the call has fenced.
    let mut last = Pipeline::default();
    for row in &batch.visibility {
        last.push(visibility::UPSERT, visibility::upsert_params(row));
    }
    for key in &batch.delete_executions {
        last.push(
            visibility::DELETE,
            params![key.namespace_id.clone(), key.run_id.clone()],
        );
    }
    let (arguments, conditions) = arguments(shard_id, expected_range_id, batch);
    let mut call = Pipeline::default();
    call.push(COMMIT, arguments);
    let (tx, answers) = match WriteTransaction::begin(client, call).await {
        Ok(answer) => answer,
        Err(e) => return Err(conditions.refused(e, shard_id, expected_range_id)),
    };
    let xid: String = match answers.first().and_then(|rows| rows.first()) {
        Some(row) => column(row, 0)?,
        None => {
            return Err(Error::Backend(
                "postgres: sundial_commit gave no answer".into(),
            ));
        }
    };
    tx.commit(last, xid, pool, errors::statement).await
}

/// What a batch's conditions were, one per write in the batch's order, to say which failed.
struct Conditions {
    /// Workflow id and expected current run.
    current: Vec<(String, Option<String>)>,
    /// Workflow id, run id and expected `db_version`.
    executions: Vec<(String, String, Option<i64>)>,
}

impl Conditions {
    /// The store's error for a failed call of `sundial_commit`.
    fn refused(&self, e: tokio_postgres::Error, shard_id: i32, expected: i64) -> Error {
        let Some(db) = e.as_db_error() else {
            return errors::statement(e);
        };
        let detail = db.detail().unwrap_or("");
        // The HINT of a failed condition: `=` and the value found, or empty for no row.
        let found = db.hint().and_then(|h| h.strip_prefix('='));
        // The DETAIL of a failed condition: the write's position in the batch, from 1.
        let write = detail.parse::<usize>().ok().and_then(|i| i.checked_sub(1));
        match db.code().code() {
            OWNERSHIP_LOST => Error::ShardOwnershipLost {
                shard_id,
                expected,
                actual: detail.parse().unwrap_or(0),
            },
            CURRENT_CONDITION => match write.and_then(|i| self.current.get(i)) {
                Some((workflow_id, expected)) => Error::ConditionFailed(format!(
                    "current run of {workflow_id}: expected {expected:?}, found {found:?}"
                )),
                None => Error::ConditionFailed(db.message().to_string()),
            },
            VERSION_CONDITION => match write.and_then(|i| self.executions.get(i)) {
                Some((workflow_id, run_id, expected)) => {
                    let found: Option<i64> = found.and_then(|v| v.parse().ok());
                    Error::ConditionFailed(format!(
                        "execution {workflow_id}/{run_id}: expected db_version {expected:?}, \
                         found {found:?}"
                    ))
                }
                None => Error::ConditionFailed(db.message().to_string()),
            },
            _ if errors::is_unique_violation(&e) => {
                Error::ConditionFailed(format!("a row this batch creates exists already: {detail}"))
            }
            _ => errors::statement(e),
        }
    }
}

/// The arguments of `sundial_commit` for `batch`, in its parameters' order, and the batch's
/// conditions. Later writes of one key replace earlier ones; rows go sorted by key (the
/// order the conditions lock them in).
fn arguments(
    shard_id: i32,
    expected_range_id: i64,
    batch: ShardBatch,
) -> (Vec<pipeline::Param>, Conditions) {
    let mut conditions = Conditions {
        current: Vec::with_capacity(batch.current_executions.len()),
        executions: Vec::with_capacity(batch.executions.len()),
    };

    let (mut cw_ns, mut cw_wf, mut cw_expected) = (Vec::new(), Vec::new(), Vec::new());
    // Per key: the last row written, and whether the row exists before the batch (what the
    // key's first write expects; the conditions hold only if every write of a key agrees).
    let mut current: BTreeMap<(String, String), (CurrentExecutionRow, bool)> = BTreeMap::new();
    for w in batch.current_executions {
        let key = (w.row.namespace_id.clone(), w.row.workflow_id.clone());
        cw_ns.push(key.0.clone());
        cw_wf.push(key.1.clone());
        conditions
            .current
            .push((key.1.clone(), w.expected_run_id.clone()));
        let exists = w.expected_run_id.is_some();
        cw_expected.push(w.expected_run_id);
        match current.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().0 = w.row,
            Entry::Vacant(e) => {
                e.insert((w.row, exists));
            }
        }
    }
    let (mut ew, mut ew_expected) = (RunKeys::default(), Vec::new());
    let mut executions: BTreeMap<ExecutionKey, (ExecutionRow, bool)> = BTreeMap::new();
    for w in batch.executions {
        let key = w.row.key.clone();
        ew.push(key.clone());
        ew_expected.push(w.expected_db_version);
        conditions.executions.push((
            key.workflow_id.clone(),
            key.run_id.clone(),
            w.expected_db_version,
        ));
        match executions.entry(key) {
            Entry::Occupied(mut e) => e.get_mut().0 = w.row,
            Entry::Vacant(e) => {
                e.insert((w.row, w.expected_db_version.is_some()));
            }
        }
    }

    let (mut c_ns, mut c_wf, mut c_run, mut c_data, mut c_exists) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (row, exists) in current.into_values() {
        c_ns.push(row.namespace_id);
        c_wf.push(row.workflow_id);
        c_run.push(row.run_id);
        c_data.push(row.data);
        c_exists.push(exists);
    }
    let mut e = RunKeys::default();
    let (mut e_state, mut e_version, mut e_next, mut e_exists) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (row, exists) in executions.into_values() {
        e.push(row.key);
        e_state.push(row.state);
        e_version.push(row.db_version);
        e_next.push(row.next_event_id);
        e_exists.push(exists);
    }

    // One upsert cannot touch a row twice: keep, per run and first event id, what applying
    // the batch's appends one by one would leave (a later one wins unless its txn_id is lower).
    let mut history: BTreeMap<(ExecutionKey, i64), HistoryBatch> = BTreeMap::new();
    for h in batch.history {
        match history.entry((h.key, h.batch.first_event_id)) {
            Entry::Occupied(mut e) => {
                if e.get().txn_id <= h.batch.txn_id {
                    e.insert(h.batch);
                }
            }
            Entry::Vacant(e) => {
                e.insert(h.batch);
            }
        }
    }
    let mut h = RunKeys::default();
    let (mut h_first, mut h_txn, mut h_events) = (Vec::new(), Vec::new(), Vec::new());
    for ((key, first), batch) in history {
        h.push(key);
        h_first.push(first);
        h_txn.push(batch.txn_id);
        h_events.push(batch.events);
    }

    let transfer: BTreeMap<i64, TransferTaskRow> = batch
        .transfer_tasks
        .into_iter()
        .map(|t| (t.task_id, t))
        .collect();
    let (t_ids, t_data): (Vec<i64>, Vec<Vec<u8>>) =
        transfer.into_values().map(|t| (t.task_id, t.data)).unzip();
    let timers: BTreeMap<(i64, i64), TimerTaskRow> = batch
        .timer_tasks
        .into_iter()
        .map(|t| ((t.fire_time_ms, t.task_id), t))
        .collect();
    let (mut tm_fire, mut tm_ids, mut tm_data) = (Vec::new(), Vec::new(), Vec::new());
    for t in timers.into_values() {
        tm_fire.push(t.fire_time_ms);
        tm_ids.push(t.task_id);
        tm_data.push(t.data);
    }
    let (dtm_fire, dtm_ids): (Vec<i64>, Vec<i64>) = batch.delete_timer_tasks.into_iter().unzip();
    let mut d = RunKeys::default();
    for key in batch.delete_executions {
        d.push(key);
    }

    let arguments = params![
        shard_id,
        expected_range_id,
        batch.shard_data,
        cw_ns,
        cw_wf,
        cw_expected,
        ew.ns,
        ew.wf,
        ew.run,
        ew_expected,
        c_ns,
        c_wf,
        c_run,
        c_data,
        c_exists,
        e.ns,
        e.wf,
        e.run,
        e_state,
        e_version,
        e_next,
        e_exists,
        h.ns,
        h.wf,
        h.run,
        h_first,
        h_txn,
        h_events,
        t_ids,
        t_data,
        tm_fire,
        tm_ids,
        tm_data,
        batch.delete_transfer_tasks,
        dtm_fire,
        dtm_ids,
        d.ns,
        d.wf,
        d.run,
    ];
    (arguments, conditions)
}

/// Run keys as the three text arrays `sundial_commit` takes them in, one entry per key.
#[derive(Default)]
struct RunKeys {
    ns: Vec<String>,
    wf: Vec<String>,
    run: Vec<String>,
}

impl RunKeys {
    fn push(&mut self, key: ExecutionKey) {
        self.ns.push(key.namespace_id);
        self.wf.push(key.workflow_id);
        self.run.push(key.run_id);
    }
}
