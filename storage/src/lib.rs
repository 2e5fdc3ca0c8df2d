//! `sundial-storage`: persistence traits, their contracts, and the backends.
//!
//! Owns the table families of DESIGN.md (`shards`, `executions`, `current_executions`,
//! `history`, `transfer_tasks`, `timer_tasks`, `task_queues` + `tasks`, `namespaces`) as traits
//! split by table family and by read/write, and the backends that implement them: in-memory
//! (tests and `start-dev` without a file) and SQLite (the embedded default). Every backend runs
//! the same conformance suite (`tests/conformance/`).
//!
//! Rows carry opaque blobs: the engine decides their encoding. A shard's write is one
//! [`ShardStore::commit`], atomic and fenced by the shard's `range_id`.
//!
//! Must not depend on engine internals, actix or tonic.

mod error;
pub mod faults;
pub mod instrumented;
pub mod memory;
mod model;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod visibility;

use std::sync::Arc;

use async_trait::async_trait;

pub use error::Error;
pub use model::*;

/// Result type of every storage call.
pub type Result<T> = std::result::Result<T, Error>;

/// Shard ownership and the shard's atomic, fenced write.
#[async_trait]
pub trait ShardStore: Send + Sync {
    /// Takes ownership of `shard_id` for `owner` (the address the owner serves at, recorded in
    /// the row): creates its row with `range_id` 1 when missing, otherwise increments
    /// `range_id`. Every later [`commit`](Self::commit) or [`renew_shard`](Self::renew_shard)
    /// by a previous owner (holding the old `range_id`) then fails with
    /// [`Error::ShardOwnershipLost`].
    async fn acquire_shard(&self, shard_id: i32, owner: &str) -> Result<ShardInfo>;

    /// Moves the owner's `range_id` on by one (a new range of task ids) if and only if it still
    /// equals `expected_range_id`; answers the new one. A previous owner's renewal fails with
    /// [`Error::ShardOwnershipLost`] and leaves the row as it is, so a stale owner never takes
    /// a shard back.
    async fn renew_shard(&self, shard_id: i32, expected_range_id: i64, owner: &str) -> Result<i64>;

    /// The shard's row as stored (its owner and `range_id`), if it was ever acquired.
    async fn get_shard(&self, shard_id: i32) -> Result<Option<ShardInfo>>;

    /// Applies `batch` atomically if and only if the shard's `range_id` still equals
    /// `expected_range_id` and every row condition in the batch holds. On any failure nothing of
    /// the batch is visible.
    async fn commit(&self, shard_id: i32, expected_range_id: i64, batch: ShardBatch) -> Result<()>;
}

/// Reads of shard-owned data: executions, history and the shard's task queues.
#[async_trait]
pub trait ExecutionReader: Send + Sync {
    /// The mutable-state row of one run.
    async fn get_execution(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRow>>;

    /// The current run of a workflow id.
    async fn get_current_execution(
        &self,
        shard_id: i32,
        namespace_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecutionRow>>;

    /// History batches of a run whose first event id lies in `[min_event_id, max_event_id)`,
    /// ordered by first event id.
    async fn read_history(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        min_event_id: i64,
        max_event_id: i64,
    ) -> Result<Vec<HistoryBatch>>;

    /// The history batches that can hold events in `[from_event_id, to_event_id)`: the last
    /// batch whose first event id is at or before `from_event_id` (the one holding it), then
    /// every batch whose first event id lies in `(from_event_id, to_event_id)`, ordered by
    /// first event id. A read costs what it returns, wherever it starts in the history.
    async fn read_history_covering(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        from_event_id: i64,
        to_event_id: i64,
    ) -> Result<Vec<HistoryBatch>>;

    /// Transfer tasks with `task_id > after_task_id`, ordered by task id, at most `limit`.
    async fn list_transfer_tasks(
        &self,
        shard_id: i32,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<TransferTaskRow>>;

    /// Timer tasks that fire at or before `until_ms` (unix millis), ordered by (fire time,
    /// task id), at most `limit`.
    async fn list_timer_tasks(
        &self,
        shard_id: i32,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<TimerTaskRow>>;

    /// Runs of a shard, for tools and listings; `limit` bounds the answer.
    async fn list_executions(&self, shard_id: i32, limit: usize) -> Result<Vec<ExecutionRow>>;
}

/// The `namespaces` table.
#[async_trait]
pub trait NamespaceStore: Send + Sync {
    /// Inserts a namespace; [`Error::AlreadyExists`] when its id or name is taken.
    async fn create_namespace(&self, record: NamespaceRow) -> Result<()>;
    /// Replaces a namespace row if its stored `notification_version` equals `expected_version`
    /// ([`Error::ConditionFailed`] otherwise, [`Error::NotFound`] when missing,
    /// [`Error::AlreadyExists`] when the new name belongs to another namespace).
    async fn update_namespace(&self, record: NamespaceRow, expected_version: i64) -> Result<()>;
    /// Looks a namespace up by name.
    async fn get_namespace_by_name(&self, name: &str) -> Result<Option<NamespaceRow>>;
    /// Looks a namespace up by id.
    async fn get_namespace_by_id(&self, id: &str) -> Result<Option<NamespaceRow>>;
    /// Every namespace, ordered by name.
    async fn list_namespaces(&self) -> Result<Vec<NamespaceRow>>;
}

/// The `cluster_metadata` table: one row per cluster name, written once.
#[async_trait]
pub trait ClusterMetadataStore: Send + Sync {
    /// Stores `proposed` unless a row for its cluster name exists, and returns the stored row
    /// either way: the first writer's values win, later ones are only compared against them.
    async fn cluster_metadata(&self, proposed: ClusterMetadataRow) -> Result<ClusterMetadataRow>;

    /// The store's kind as Temporal's `GetClusterInfo` names it (`sqlite`, `postgres12`,
    /// `mysql8`), or `memory`.
    fn persistence_store(&self) -> &'static str;
}

/// The `cluster_membership` table: which processes run which roles, and where.
#[async_trait]
pub trait MembershipStore: Send + Sync {
    /// Writes `member`'s row (keyed by host id and role), replacing the one it had.
    async fn upsert_member(&self, member: MemberRow) -> Result<()>;

    /// The rows of `role` whose last heartbeat is at or after `alive_since_ms`, the most
    /// recently started process first.
    async fn list_members(&self, role: &str, alive_since_ms: i64) -> Result<Vec<MemberRow>>;

    /// Deletes the rows whose record expired before `now_ms`.
    async fn prune_members(&self, now_ms: i64) -> Result<()>;
}

/// Visibility: the runs of a namespace a filter lists, and how many, read from the records
/// shards write with their commits ([`ShardBatch::visibility`]).
#[async_trait]
pub trait VisibilityStore: Send + Sync {
    /// The runs of `namespace_id` that `filter` lists (every run without one), in listing order
    /// ([`visibility::VisibilityCursor::listing_order`]), starting after `after`, at most
    /// `limit`. Rows come back without `indexed` (their attributes are in the payloads).
    async fn list_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&visibility::Filter>,
        after: Option<&visibility::VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<visibility::VisibilityRow>>;

    /// How many runs of `namespace_id` `filter` lists, and by value of `group_by` when given.
    async fn count_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&visibility::Filter>,
        group_by: Option<&visibility::Attribute>,
    ) -> Result<visibility::VisibilityCount>;

    /// Makes filters on the custom attribute `name` of type `value_type` read an index (for
    /// the types an index orders: Keyword, Int, Double, Datetime, Bool), as Temporal's SQL
    /// visibility indexes each custom field. Idempotent; a store without such indexes answers
    /// `Ok` and filters by reading its records.
    async fn index_attribute(&self, name: &str, value_type: visibility::ValueType) -> Result<()>;
}

/// The matching backlog: `task_queues` (one row per partition with its lease) and `tasks`.
#[async_trait]
pub trait TaskQueueStore: Send + Sync {
    /// Takes the lease of a partition: creates its row with `range_id` 1 when missing, otherwise
    /// increments `range_id` by compare-and-set, and returns the new `range_id`. Writes by a
    /// holder of an older lease then fail with [`Error::TaskQueueLeaseLost`].
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<i64>;

    /// Appends backlog tasks, fenced by the partition's `range_id`.
    async fn create_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        tasks: Vec<QueueTask>,
    ) -> Result<()>;

    /// Backlog tasks with `task_id > after_task_id`, ordered, at most `limit`.
    async fn get_tasks(
        &self,
        key: &TaskQueueKey,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<QueueTask>>;

    /// Deletes the named backlog tasks, fenced by the partition's `range_id`.
    async fn delete_tasks(&self, key: &TaskQueueKey, range_id: i64, task_ids: &[i64])
    -> Result<()>;
}

/// Everything a node needs from its store.
pub trait Store:
    ShardStore
    + ExecutionReader
    + NamespaceStore
    + TaskQueueStore
    + ClusterMetadataStore
    + VisibilityStore
    + MembershipStore
{
}
impl<T> Store for T where
    T: ShardStore
        + ExecutionReader
        + NamespaceStore
        + TaskQueueStore
        + ClusterMetadataStore
        + VisibilityStore
        + MembershipStore
{
}

/// A shared handle to a store.
pub type DynStore = Arc<dyn Store>;
