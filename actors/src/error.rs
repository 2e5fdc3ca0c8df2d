//! Errors of the actor layer.

/// What a history or matching call can fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// The engine refused the request.
    #[error(transparent)]
    Engine(#[from] sundial_engine::Error),
    /// The store failed; the outcome is unknown.
    #[error(transparent)]
    Storage(#[from] sundial_storage::Error),
    /// A run with this workflow id is already running.
    #[error("Workflow execution is already running. WorkflowId: {workflow_id}, RunId: {run_id}.")]
    WorkflowAlreadyStarted {
        /// Workflow id.
        workflow_id: String,
        /// The running run.
        run_id: String,
        /// Request id that started it.
        start_request_id: String,
    },
    /// No such namespace.
    #[error("Namespace {0} is not found.")]
    NamespaceNotFound(String),
    /// No such workflow or run.
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    InvalidArgument(String),
    /// The sticky worker is gone; dispatch to the normal queue.
    #[error("sticky worker unavailable")]
    StickyWorkerUnavailable,
    /// Another process owns the history shard (it acquired the shard after this one did);
    /// `owner` is the address that process serves at, as recorded in the shard's row (empty
    /// when not known). Nothing of the refused request was written: retry it at the owner.
    #[error("shard {shard_id} is owned by {}", if owner.is_empty() { "another process" } else { owner })]
    ShardOwnershipLost {
        /// The shard.
        shard_id: i32,
        /// Where its owner serves.
        owner: String,
    },
    /// The component is shutting down or lost ownership; retry later.
    #[error("{0}")]
    Unavailable(String),
    /// The workflow cannot answer yet (Temporal's WorkflowNotReady).
    #[error("{0}")]
    WorkflowNotReady(String),
    /// A limit was hit.
    #[error("{0}")]
    ResourceExhausted(String),
    /// A shard or partition has more requests waiting than it takes; retry later (Temporal's
    /// ResourceExhausted with cause SYSTEM_OVERLOADED).
    #[error("{0}")]
    Overloaded(String),
    /// A bug: the server broke one of its own rules (never the caller's fault).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result type of the actor layer.
pub type Result<T> = std::result::Result<T, Error>;
