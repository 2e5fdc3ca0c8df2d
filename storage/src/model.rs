//! Rows and write batches exchanged with a store.

use crate::visibility::VisibilityRow;

/// A history shard's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// 1-based shard id.
    pub shard_id: i32,
    /// Ownership fence: bumped by every acquisition.
    pub range_id: i64,
    /// The address the owner serves at, as it gave it when it acquired the shard (empty in
    /// rows written before owners were recorded).
    pub owner: String,
    /// Opaque shard metadata (ack levels and the like), written by [`ShardBatch::shard_data`].
    pub data: Vec<u8>,
}

/// Identifies one run of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecutionKey {
    /// Namespace id (not name).
    pub namespace_id: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Run id.
    pub run_id: String,
}

/// The mutable-state row of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRow {
    /// Which run.
    pub key: ExecutionKey,
    /// The encoded mutable state.
    pub state: Vec<u8>,
    /// Optimistic-concurrency version, incremented by each write.
    pub db_version: i64,
    /// The id the next history event will get: events below it are valid.
    pub next_event_id: i64,
}

/// The `current_executions` row: which run of a workflow id is the current one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentExecutionRow {
    /// Namespace id.
    pub namespace_id: String,
    /// Workflow id.
    pub workflow_id: String,
    /// The current run.
    pub run_id: String,
    /// Opaque facts about the current run the engine needs without loading it (status, the
    /// start request id, ...).
    pub data: Vec<u8>,
}

/// One append-only batch of history events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryBatch {
    /// Id of the first event in the batch.
    pub first_event_id: i64,
    /// Transaction id of the write; a rewrite of the same first event id with a higher or equal
    /// one replaces the stored batch, one with a lower txn id is ignored.
    pub txn_id: i64,
    /// The encoded events.
    pub events: Vec<u8>,
}

/// A history batch to append to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryAppend {
    /// Which run.
    pub key: ExecutionKey,
    /// The batch.
    pub batch: HistoryBatch,
}

/// A write of an execution row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionWrite {
    /// The new row (its `db_version` is the new version).
    pub row: ExecutionRow,
    /// `None`: the row must not exist yet. `Some(v)`: the stored `db_version` must equal `v`.
    pub expected_db_version: Option<i64>,
}

/// A write of a `current_executions` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentExecutionWrite {
    /// The new row.
    pub row: CurrentExecutionRow,
    /// `None`: no current run may exist. `Some(run)`: the stored current run must be `run`.
    pub expected_run_id: Option<String>,
}

/// A transfer task: work to do right after the commit (push a task to matching, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTaskRow {
    /// Shard-unique, increasing task id.
    pub task_id: i64,
    /// The encoded task.
    pub data: Vec<u8>,
}

/// A timer task: work to do at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTaskRow {
    /// When it fires (unix milliseconds).
    pub fire_time_ms: i64,
    /// Shard-unique task id.
    pub task_id: i64,
    /// The encoded task.
    pub data: Vec<u8>,
}

/// Everything one shard commit writes, applied atomically.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShardBatch {
    /// Current-run pointer changes (checked and applied first).
    pub current_executions: Vec<CurrentExecutionWrite>,
    /// Mutable-state writes.
    pub executions: Vec<ExecutionWrite>,
    /// History appends.
    pub history: Vec<HistoryAppend>,
    /// New transfer tasks.
    pub transfer_tasks: Vec<TransferTaskRow>,
    /// New timer tasks.
    pub timer_tasks: Vec<TimerTaskRow>,
    /// Transfer tasks whose effect is durable elsewhere.
    pub delete_transfer_tasks: Vec<i64>,
    /// Timer tasks (fire time, task id) that have fired and whose effect is in this batch or
    /// durable elsewhere.
    pub delete_timer_tasks: Vec<(i64, i64)>,
    /// New opaque shard metadata, if it changed.
    pub shard_data: Option<Vec<u8>>,
    /// Runs to delete (DeleteWorkflowExecution): the execution row, its history, and the
    /// current-run pointer when it names the run. Applied after every other write.
    pub delete_executions: Vec<ExecutionKey>,
    /// Visibility records of runs this batch started, closed or changed the search attributes
    /// or memo of (written in the same transaction, so listings are never stale). A run in
    /// `delete_executions` loses its record.
    pub visibility: Vec<VisibilityRow>,
}

impl ShardBatch {
    /// True when the batch writes nothing.
    pub fn is_empty(&self) -> bool {
        self.current_executions.is_empty()
            && self.executions.is_empty()
            && self.history.is_empty()
            && self.transfer_tasks.is_empty()
            && self.timer_tasks.is_empty()
            && self.delete_transfer_tasks.is_empty()
            && self.delete_timer_tasks.is_empty()
            && self.shard_data.is_none()
            && self.delete_executions.is_empty()
            && self.visibility.is_empty()
    }
}

/// What a store remembers of the cluster it serves: its id, and the number of history shards it
/// was set up with (workflows map to shards by that number, so it can never change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMetadataRow {
    /// The cluster's name (`active`, as Temporal's single-cluster default).
    pub cluster_name: String,
    /// A UUID chosen when the row was first written.
    pub cluster_id: String,
    pub history_shard_count: i32,
}

/// A process of the cluster as the `cluster_membership` table lists it (Temporal's row): each
/// process upserts its own every few seconds, and the others read where a role answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRow {
    /// The process's id, new at each start (a UUID).
    pub host_id: String,
    /// The role it runs (`frontend`, `history`, `matching`, `worker`); a process that runs
    /// several has a row per role.
    pub role: String,
    /// Where the role's gRPC server answers (`host:port`).
    pub rpc_address: String,
    /// Where the process gossips (`host:port`, UDP; empty for a process that does not): the
    /// others find their gossip seeds here.
    pub gossip_address: String,
    /// When the process started (unix millis).
    pub session_start_ms: i64,
    /// Its latest heartbeat (unix millis).
    pub last_heartbeat_ms: i64,
    /// When the row may be deleted if no heartbeat renews it (unix millis).
    pub record_expiry_ms: i64,
}

/// A namespace row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRow {
    /// Namespace id (a UUID).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Incremented by each update; the compare-and-set version.
    pub notification_version: i64,
    /// The encoded namespace description.
    pub data: Vec<u8>,
}

/// Identifies one task-queue partition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskQueueKey {
    /// Namespace id.
    pub namespace_id: String,
    /// Task queue name.
    pub name: String,
    /// Task type (workflow = 1, activity = 2, as Temporal's `TaskQueueType`).
    pub task_type: i32,
    /// Partition number (0 is the root).
    pub partition: i32,
}

/// One backlog task of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTask {
    /// Partition-unique, increasing id.
    pub task_id: i64,
    /// The encoded task.
    pub data: Vec<u8>,
}
