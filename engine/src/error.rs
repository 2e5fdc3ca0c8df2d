//! Errors of the engine: why a request cannot be applied to a run.

/// What applying a request to a run can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// The task, activity or run the request names does not exist (or is stale).
    #[error("{0}")]
    NotFound(String),
    /// The run is closed.
    #[error("workflow execution already completed")]
    WorkflowCompleted,
    /// The task was already handed to another poller.
    #[error("task already started")]
    TaskAlreadyStarted,
    /// A per-run limit refuses the request.
    #[error("{0}")]
    LimitExceeded(String),
}
