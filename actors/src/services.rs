//! The two internal services, as traits: [`HistoryService`] (the history shards) and
//! [`MatchingService`] (the task-queue partitions). Each has a local implementation over this
//! process's actors ([`crate::LocalHistory`], [`crate::Matching`]) and a remote one over the
//! internal gRPC API (in `sundial-transport`). Callers (the frontend, the shards, matching)
//! depend on the traits only, so one process and several run the same code path.
//!
//! Requests and replies are the plain data of [`crate::ops`] and the types below: no channels,
//! no closures, so they cross a network as they are.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use sundial_engine::TaskInfo;
use sundial_engine::api::workflowservice::v1::RespondQueryTaskCompletedRequest;
use sundial_storage::TaskQueueKey;

use crate::Result;
use crate::matching::QueryTask;
use crate::matching_stats::PartitionStats;
use crate::ops::{ActivityStarted, Request, Response, WorkflowTaskStarted};

/// A boxed future, as the traits return them (they are used as trait objects).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One reply a history request gets, once the shard has it.
pub type Reply = BoxFuture<'static, Result<Response>>;

/// The history shards, wherever they run.
pub trait HistoryService: Send + Sync + 'static {
    /// Sends `request` to shard `shard_id`; its replies arrive, in order, on the futures
    /// returned, one per reply it gets ([`Request::tickets`]).
    fn submit(&self, shard_id: i32, request: Request) -> BoxFuture<'_, Result<Vec<Reply>>>;

    /// True while every shard this service reaches serves.
    fn serving(&self) -> BoxFuture<'_, bool>;

    /// The shards that serve behind this service now, ascending.
    fn serving_shards(&self) -> BoxFuture<'_, Vec<i32>>;

    /// Makes the shards re-read the namespaces (retention, custom search attributes) before
    /// it answers: a frontend changed one. Shards of the caller's own process share its
    /// registry, which the change updated already.
    fn refresh_namespaces(&self) -> BoxFuture<'_, Result<()>>;
}

/// What a poller asks matching for.
#[derive(Debug, Clone, PartialEq)]
pub struct Poll {
    /// The poller's identity (listed by DescribeTaskQueue, written on the started event).
    pub identity: String,
    /// The build id from the poll's worker-version capabilities ("" when none).
    pub build_id: String,
    /// The queue's name as polled (for workflow tasks, written on the started event).
    pub queue: String,
    /// Whether the poller polls its sticky queue.
    pub sticky: bool,
    /// How long to wait for a task before answering empty.
    pub timeout: Duration,
}

/// What a workflow-task poll gets.
#[derive(Debug, Clone)]
pub enum PolledWorkflowTask {
    /// A workflow task, its start recorded in history.
    Started(Box<WorkflowTaskStarted>),
    /// A legacy query for the worker to answer (RespondQueryTaskCompleted).
    Query(Box<QueryTask>),
}

/// The task-queue partitions, wherever they run.
pub trait MatchingService: Send + Sync + 'static {
    /// Offers a workflow or activity task; answered once the task is safe (handed to a poller
    /// whose start history recorded, or written to the backlog). A `sticky` queue whose worker
    /// is gone refuses with [`crate::Error::StickyWorkerUnavailable`].
    fn add_task(
        &self,
        key: TaskQueueKey,
        task: TaskInfo,
        sticky: bool,
    ) -> BoxFuture<'_, Result<()>>;

    /// Waits for a workflow task (recording its start in history) or a legacy query; `None`
    /// when the poll's timeout passes first.
    fn poll_workflow_task(
        &self,
        key: TaskQueueKey,
        poll: Poll,
    ) -> BoxFuture<'_, Result<Option<PolledWorkflowTask>>>;

    /// Waits for an activity task, recording its start in history; `None` when the poll's
    /// timeout passes first.
    fn poll_activity_task(
        &self,
        key: TaskQueueKey,
        poll: Poll,
    ) -> BoxFuture<'_, Result<Option<Box<ActivityStarted>>>>;

    /// Hands a legacy query to the run's sticky worker (when `sticky` is set and that worker
    /// polls) or to its normal queue, and waits for the worker's answer until the query
    /// expires (`None` then).
    fn query_workflow(
        &self,
        sticky: Option<TaskQueueKey>,
        normal: TaskQueueKey,
        query: QueryTask,
    ) -> BoxFuture<'_, Result<Option<RespondQueryTaskCompletedRequest>>>;

    /// Gives a worker's answer to the query waiting for it; false when none waits (it was
    /// answered already, or its caller is gone).
    fn respond_query_task_completed(
        &self,
        query_id: String,
        answer: RespondQueryTaskCompletedRequest,
    ) -> BoxFuture<'_, Result<bool>>;

    /// The exact statistics of a partition, loading it if needed; `None` when it cannot be
    /// reached.
    fn describe_task_queue(
        &self,
        key: TaskQueueKey,
    ) -> BoxFuture<'_, Result<Option<PartitionStats>>>;

    /// Unloads a sticky queue whose worker shut down (ShutdownWorker), so its tasks go to the
    /// normal queue at once.
    fn unload_sticky_queue(&self, key: TaskQueueKey) -> BoxFuture<'_, Result<()>>;

    /// Whether the service can be reached: always in its own process; for another process's,
    /// whether one is known to be up.
    fn serving(&self) -> BoxFuture<'_, bool>;
}

/// The matching service a caller holds.
pub type MatchingClient = Arc<dyn MatchingService>;
