//! Errors of the storage layer.

/// What a storage call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The shard's `range_id` moved on: another owner acquired it. The caller must stop acting
    /// as its owner.
    #[error("shard {shard_id} ownership lost: expected range_id {expected}, found {actual}")]
    ShardOwnershipLost {
        /// The shard.
        shard_id: i32,
        /// The range id the caller held.
        expected: i64,
        /// The range id in the store.
        actual: i64,
    },
    /// The partition's lease moved on to another holder.
    #[error("task queue lease lost: expected range_id {expected}, found {actual}")]
    TaskQueueLeaseLost {
        /// The range id the caller held.
        expected: i64,
        /// The range id in the store.
        actual: i64,
    },
    /// A row condition of a write did not hold (a version or a current run changed).
    #[error("condition failed: {0}")]
    ConditionFailed(String),
    /// An insert found its key taken.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// An update found no row.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend failed (I/O, driver, corrupt row). The outcome of a write is unknown.
    #[error("storage backend: {0}")]
    Backend(String),
    /// The backend could not be reached (connection refused or lost before a write was sent,
    /// pool exhausted, database restarting). Nothing was written: the call may be retried.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}
