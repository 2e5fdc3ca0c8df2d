//! The shard-owned tables: `shards` (ownership and the fenced commit), `executions`,
//! `current_executions`, `history_node`, `transfer_tasks` and `timer_tasks`.

use std::collections::HashSet;

use async_trait::async_trait;
use mysql_async::Transaction;
use mysql_async::prelude::Queryable;

use super::error::{Sent, TxResult};
use super::settle::{self, CommitMark};
use super::{Ended, MysqlStore, first_row, insert_new, sql_limit, visibility};
use crate::{
    CurrentExecutionRow, Error, ExecutionKey, ExecutionReader, ExecutionRow, HistoryBatch, Result,
    ShardBatch, ShardInfo, ShardStore, TimerTaskRow, TransferTaskRow,
};

/// The columns of an execution row, in [`ExecutionColumns`] order.
const EXECUTION_COLUMNS: &str =
    "namespace_id, workflow_id, run_id, state, db_version, next_event_id";
type ExecutionColumns = (String, String, String, Vec<u8>, i64, i64);

fn execution_row(
    (namespace_id, workflow_id, run_id, state, db_version, next_event_id): ExecutionColumns,
) -> ExecutionRow {
    ExecutionRow {
        key: ExecutionKey {
            namespace_id,
            workflow_id,
            run_id,
        },
        state,
        db_version,
        next_event_id,
    }
}

/// A run's key in a batch, borrowed.
type RunKey<'a> = (&'a str, &'a str, &'a str);

fn run_key(key: &ExecutionKey) -> RunKey<'_> {
    (&key.namespace_id, &key.workflow_id, &key.run_id)
}

/// Fences the commit and marks the shard's row (see `settle`): the `UPDATE` matches only the
/// expected `range_id`, so a stale owner changes nothing and is refused with the `range_id` it
/// lost to. It also writes the batch's new shard data. The row's lock is held to the end of the
/// transaction: acquiring the shard waits for the commit, and a shard's commits take turns.
async fn fence(
    tx: &mut Transaction<'_>,
    shard_id: i32,
    expected: i64,
    shard_data: Option<&Vec<u8>>,
) -> TxResult<CommitMark> {
    let token = settle::new_token();
    // LAST_INSERT_ID(expr) hands the new sequence number back in the statement's answer.
    tx.exec_drop(
        "UPDATE shards SET commit_seq = LAST_INSERT_ID(commit_seq + 1), commit_token = ?,
             data = COALESCE(?, data)
         WHERE shard_id = ? AND range_id = ?",
        (token, shard_data, shard_id, expected),
    )
    .await?;
    if tx.affected_rows() == 0 {
        let actual = first_row::<i64>(
            tx,
            "SELECT range_id FROM shards WHERE shard_id = ?",
            (shard_id,),
        )
        .await?
        .unwrap_or(0);
        return Err(Error::ShardOwnershipLost {
            shard_id,
            expected,
            actual,
        }
        .into());
    }
    let seq = tx.last_insert_id().and_then(|id| i64::try_from(id).ok());
    let seq = seq.ok_or_else(|| Error::Backend("mysql: no commit_seq in the answer".into()))?;
    Ok(CommitMark {
        seq,
        token,
        session: tx.id(),
    })
}

/// The rows a batch's conditions name that exist before the batch.
#[derive(Default)]
struct Existing<'a> {
    current: HashSet<(&'a str, &'a str)>,
    executions: HashSet<RunKey<'a>>,
}

/// Locks every row a condition of `batch` names and checks the condition, before anything is
/// written, so a batch that touches a row twice is judged against the state before the batch
/// (as in memory). Answers which of those rows exist.
async fn check_conditions<'b>(
    tx: &mut Transaction<'_>,
    shard_id: i32,
    batch: &'b ShardBatch,
) -> TxResult<Existing<'b>> {
    let mut existing = Existing::default();
    for w in &batch.current_executions {
        let (ns, wf) = (w.row.namespace_id.as_str(), w.row.workflow_id.as_str());
        let stored: Option<String> = first_row(
            tx,
            "SELECT run_id FROM current_executions
             WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? FOR UPDATE",
            (shard_id, ns, wf),
        )
        .await?;
        if stored.as_deref() != w.expected_run_id.as_deref() {
            return Err(Error::ConditionFailed(format!(
                "current run of {wf}: expected {:?}, found {stored:?}",
                w.expected_run_id
            ))
            .into());
        }
        if stored.is_some() {
            existing.current.insert((ns, wf));
        }
    }
    for w in &batch.executions {
        let k = &w.row.key;
        let stored: Option<i64> = first_row(
            tx,
            "SELECT db_version FROM executions
             WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ?
             FOR UPDATE",
            (shard_id, &k.namespace_id, &k.workflow_id, &k.run_id),
        )
        .await?;
        if stored != w.expected_db_version {
            return Err(Error::ConditionFailed(format!(
                "execution {}/{}: expected db_version {:?}, found {stored:?}",
                k.workflow_id, k.run_id, w.expected_db_version
            ))
            .into());
        }
        if stored.is_some() {
            existing.executions.insert(run_key(k));
        }
    }
    Ok(existing)
}

/// Writes every row of `batch` but the shard's data (conditions checked, their rows locked). A row that did not
/// exist is inserted with a plain `INSERT`: if another transaction created it meanwhile (no
/// lock covers a missing row at READ COMMITTED), the duplicate key fails the condition.
async fn apply_batch<'b>(
    tx: &mut Transaction<'_>,
    shard_id: i32,
    batch: &'b ShardBatch,
    mut existing: Existing<'b>,
) -> TxResult<()> {
    for w in &batch.current_executions {
        let r = &w.row;
        let key = (r.namespace_id.as_str(), r.workflow_id.as_str());
        let params = (shard_id, key.0, key.1, &r.run_id, &r.data);
        if existing.current.contains(&key) {
            tx.exec_drop(
                "INSERT INTO current_executions
                 (shard_id, namespace_id, workflow_id, run_id, data) VALUES (?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE run_id = VALUES(run_id), data = VALUES(data)",
                params,
            )
            .await?;
        } else {
            insert_new(
                tx,
                "INSERT INTO current_executions
                 (shard_id, namespace_id, workflow_id, run_id, data) VALUES (?, ?, ?, ?, ?)",
                params,
                || {
                    Error::ConditionFailed(format!(
                        "current run of {}: created concurrently",
                        r.workflow_id
                    ))
                },
            )
            .await?;
            existing.current.insert(key);
        }
    }
    for w in &batch.executions {
        let r = &w.row;
        let key = run_key(&r.key);
        let params = (
            shard_id,
            key.0,
            key.1,
            key.2,
            &r.state,
            r.db_version,
            r.next_event_id,
        );
        if existing.executions.contains(&key) {
            tx.exec_drop(
                "INSERT INTO executions
                 (shard_id, namespace_id, workflow_id, run_id, state, db_version, next_event_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?)
                 ON DUPLICATE KEY UPDATE state = VALUES(state),
                     db_version = VALUES(db_version), next_event_id = VALUES(next_event_id)",
                params,
            )
            .await?;
        } else {
            insert_new(
                tx,
                "INSERT INTO executions
                 (shard_id, namespace_id, workflow_id, run_id, state, db_version, next_event_id)
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                params,
                || {
                    Error::ConditionFailed(format!(
                        "execution {}/{}: created concurrently",
                        key.1, key.2
                    ))
                },
            )
            .await?;
            existing.executions.insert(key);
        }
    }
    if !batch.history.is_empty() {
        // Same first event id: the write with the higher (or equal) txn_id wins. `events` is
        // assigned first: it must compare against the stored txn_id, not the new one.
        tx.exec_batch(
            "INSERT INTO history_node
             (shard_id, namespace_id, workflow_id, run_id, first_event_id, txn_id, events)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE
                 events = IF(VALUES(txn_id) >= txn_id, VALUES(events), events),
                 txn_id = GREATEST(txn_id, VALUES(txn_id))",
            batch.history.iter().map(|h| {
                let (k, b) = (&h.key, &h.batch);
                (
                    shard_id,
                    &k.namespace_id,
                    &k.workflow_id,
                    &k.run_id,
                    b.first_event_id,
                    b.txn_id,
                    &b.events,
                )
            }),
        )
        .await?;
    }
    if !batch.transfer_tasks.is_empty() {
        tx.exec_batch(
            "INSERT INTO transfer_tasks (shard_id, task_id, data) VALUES (?, ?, ?)
             ON DUPLICATE KEY UPDATE data = VALUES(data)",
            batch
                .transfer_tasks
                .iter()
                .map(|t| (shard_id, t.task_id, &t.data)),
        )
        .await?;
    }
    if !batch.timer_tasks.is_empty() {
        tx.exec_batch(
            "INSERT INTO timer_tasks (shard_id, fire_time_ms, task_id, data) VALUES (?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE data = VALUES(data)",
            batch
                .timer_tasks
                .iter()
                .map(|t| (shard_id, t.fire_time_ms, t.task_id, &t.data)),
        )
        .await?;
    }
    if !batch.delete_transfer_tasks.is_empty() {
        tx.exec_batch(
            "DELETE FROM transfer_tasks WHERE shard_id = ? AND task_id = ?",
            batch.delete_transfer_tasks.iter().map(|id| (shard_id, *id)),
        )
        .await?;
    }
    if !batch.delete_timer_tasks.is_empty() {
        tx.exec_batch(
            "DELETE FROM timer_tasks WHERE shard_id = ? AND fire_time_ms = ? AND task_id = ?",
            batch
                .delete_timer_tasks
                .iter()
                .map(|(fire, id)| (shard_id, *fire, *id)),
        )
        .await?;
    }
    if !batch.visibility.is_empty() {
        tx.exec_batch(
            visibility::UPSERT,
            batch.visibility.iter().map(visibility::upsert_params),
        )
        .await?;
    }
    for key in &batch.delete_executions {
        tx.exec_drop(visibility::DELETE, (&key.namespace_id, &key.run_id))
            .await?;
        let k = (shard_id, &key.namespace_id, &key.workflow_id, &key.run_id);
        for sql in [
            "DELETE FROM executions WHERE shard_id = ? AND namespace_id = ? \
             AND workflow_id = ? AND run_id = ?",
            "DELETE FROM history_node WHERE shard_id = ? AND namespace_id = ? \
             AND workflow_id = ? AND run_id = ?",
            "DELETE FROM current_executions WHERE shard_id = ? AND namespace_id = ? \
             AND workflow_id = ? AND run_id = ?",
        ] {
            tx.exec_drop(sql, k).await?;
        }
    }
    Ok(())
}

/// Takes ownership of a shard: creates its row or increments its `range_id`.
async fn acquire(tx: &mut Transaction<'_>, shard_id: i32, owner: &str) -> TxResult<ShardInfo> {
    tx.exec_drop(
        "INSERT INTO shards (shard_id, range_id, data, owner) VALUES (?, 1, '', ?)
         ON DUPLICATE KEY UPDATE range_id = range_id + 1, owner = VALUES(owner)",
        (shard_id, owner),
    )
    .await?;
    Ok(read_shard(tx, shard_id)
        .await?
        .ok_or_else(|| Error::Backend(format!("shard {shard_id} vanished while acquired")))?)
}

/// Moves the shard's `range_id` on by one if it still is `expected`; answers the new one.
async fn renew(
    tx: &mut Transaction<'_>,
    shard_id: i32,
    expected: i64,
    owner: &str,
) -> TxResult<i64> {
    tx.exec_drop(
        "UPDATE shards SET range_id = range_id + 1, owner = ? WHERE shard_id = ? AND range_id = ?",
        (owner, shard_id, expected),
    )
    .await?;
    let renewed = tx.affected_rows() == 1;
    let actual = read_shard(tx, shard_id).await?.map_or(0, |s| s.range_id);
    if !renewed {
        return Err(Error::ShardOwnershipLost {
            shard_id,
            expected,
            actual,
        }
        .into());
    }
    Ok(actual)
}

/// The shard's row, if it was ever acquired.
async fn read_shard(q: &mut impl Queryable, shard_id: i32) -> TxResult<Option<ShardInfo>> {
    let row = first_row::<(i64, Vec<u8>, String)>(
        q,
        "SELECT range_id, data, owner FROM shards WHERE shard_id = ?",
        (shard_id,),
    )
    .await?;
    Ok(row.map(|(range_id, data, owner)| ShardInfo {
        shard_id,
        range_id,
        owner,
        data,
    }))
}

/// The fenced commit of a shard's batch; answers the mark it left on the shard's row.
async fn commit_batch(
    tx: &mut Transaction<'_>,
    shard_id: i32,
    expected_range_id: i64,
    batch: &ShardBatch,
) -> TxResult<CommitMark> {
    let mark = fence(tx, shard_id, expected_range_id, batch.shard_data.as_ref()).await?;
    let existing = check_conditions(tx, shard_id, batch).await?;
    apply_batch(tx, shard_id, batch, existing).await?;
    Ok(mark)
}

#[async_trait]
impl ShardStore for MysqlStore {
    async fn acquire_shard(&self, shard_id: i32, owner: &str) -> Result<ShardInfo> {
        self.transaction(|mut tx| async move {
            let acquired = acquire(&mut tx, shard_id, owner).await;
            (tx, acquired)
        })
        .await
    }

    async fn renew_shard(&self, shard_id: i32, expected_range_id: i64, owner: &str) -> Result<i64> {
        self.transaction(|mut tx| async move {
            let renewed = renew(&mut tx, shard_id, expected_range_id, owner).await;
            (tx, renewed)
        })
        .await
    }

    async fn get_shard(&self, shard_id: i32) -> Result<Option<ShardInfo>> {
        let mut conn = self.conn().await?;
        read_shard(&mut conn, shard_id)
            .await
            .map_err(|e| e.into_error(Sent::BeforeCommit, &self.target))
    }

    async fn commit(&self, shard_id: i32, expected_range_id: i64, batch: ShardBatch) -> Result<()> {
        let batch = &batch;
        let ended = self
            .run_transaction(|mut tx| async move {
                let committed = commit_batch(&mut tx, shard_id, expected_range_id, batch).await;
                (tx, committed)
            })
            .await;
        match ended {
            Ended::Committed(_) => Ok(()),
            Ended::Failed(e) => Err(e),
            Ended::Unknown(mark, unknown) => self.settle(shard_id, &mark, unknown).await,
        }
    }
}

/// Selects the history batches of a run.
const HISTORY_COLUMNS: &str = "SELECT first_event_id, txn_id, events FROM history_node
     WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ?";

impl MysqlStore {
    /// History batches of `key` whose first event id is at least `from` (or, with `covering`,
    /// at least that of the batch holding event `from`) and below `to`.
    async fn history(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        from: i64,
        to: i64,
        covering: bool,
    ) -> Result<Vec<HistoryBatch>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let (ns, wf, run) = run_key(key);
        let rows: Vec<(i64, i64, Vec<u8>)> = if covering {
            // The batch holding `from` starts at the greatest first event id at or before it.
            let sql = format!(
                "{HISTORY_COLUMNS} AND first_event_id >= COALESCE(
                     (SELECT MAX(first_event_id) FROM history_node
                      WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ?
                        AND first_event_id <= ?), ?)
                   AND first_event_id < ? ORDER BY first_event_id"
            );
            let params = (shard_id, ns, wf, run, shard_id, ns, wf, run, from, from, to);
            self.select(&sql, params).await?
        } else {
            let sql = format!(
                "{HISTORY_COLUMNS} AND first_event_id >= ? AND first_event_id < ?
                 ORDER BY first_event_id"
            );
            self.select(&sql, (shard_id, ns, wf, run, from, to)).await?
        };
        Ok(rows
            .into_iter()
            .map(|(first_event_id, txn_id, events)| HistoryBatch {
                first_event_id,
                txn_id,
                events,
            })
            .collect())
    }
}

#[async_trait]
impl ExecutionReader for MysqlStore {
    async fn get_execution(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRow>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions
             WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ? AND run_id = ?"
        );
        let (ns, wf, run) = run_key(key);
        let row = self.select_first(&sql, (shard_id, ns, wf, run)).await?;
        Ok(row.map(execution_row))
    }

    async fn get_current_execution(
        &self,
        shard_id: i32,
        namespace_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecutionRow>> {
        let row: Option<(String, String, String, Vec<u8>)> = self
            .select_first(
                "SELECT namespace_id, workflow_id, run_id, data FROM current_executions
                 WHERE shard_id = ? AND namespace_id = ? AND workflow_id = ?",
                (shard_id, namespace_id, workflow_id),
            )
            .await?;
        Ok(row.map(
            |(namespace_id, workflow_id, run_id, data)| CurrentExecutionRow {
                namespace_id,
                workflow_id,
                run_id,
                data,
            },
        ))
    }

    async fn read_history(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        min_event_id: i64,
        max_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        self.history(shard_id, key, min_event_id, max_event_id, false)
            .await
    }

    async fn read_history_covering(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        from_event_id: i64,
        to_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        self.history(shard_id, key, from_event_id, to_event_id, true)
            .await
    }

    async fn list_transfer_tasks(
        &self,
        shard_id: i32,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<TransferTaskRow>> {
        let rows: Vec<(i64, Vec<u8>)> = self
            .select(
                "SELECT task_id, data FROM transfer_tasks
                 WHERE shard_id = ? AND task_id > ? ORDER BY task_id LIMIT ?",
                (shard_id, after_task_id, sql_limit(limit)),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(task_id, data)| TransferTaskRow { task_id, data })
            .collect())
    }

    async fn list_timer_tasks(
        &self,
        shard_id: i32,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<TimerTaskRow>> {
        let rows: Vec<(i64, i64, Vec<u8>)> = self
            .select(
                "SELECT fire_time_ms, task_id, data FROM timer_tasks
                 WHERE shard_id = ? AND fire_time_ms <= ?
                 ORDER BY fire_time_ms, task_id LIMIT ?",
                (shard_id, until_ms, sql_limit(limit)),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(fire_time_ms, task_id, data)| TimerTaskRow {
                fire_time_ms,
                task_id,
                data,
            })
            .collect())
    }

    async fn list_executions(&self, shard_id: i32, limit: usize) -> Result<Vec<ExecutionRow>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE shard_id = ?
             ORDER BY namespace_id, workflow_id, run_id LIMIT ?"
        );
        let rows: Vec<ExecutionColumns> = self.select(&sql, (shard_id, sql_limit(limit))).await?;
        Ok(rows.into_iter().map(execution_row).collect())
    }
}
