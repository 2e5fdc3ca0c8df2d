//! The requests a history shard applies, each with its typed reply channel.

use sundial_engine::api::{
    common::v1::{Payloads, WorkflowExecution},
    enums::v1::WorkflowTaskFailedCause,
    failure::v1::Failure,
    history::v1::HistoryEvent,
    workflowservice::v1::RespondWorkflowTaskCompletedRequest,
};
use sundial_engine::{
    ActivityInfo, CompletionOutcome, Env, MutableState, Signal, StartParams, TaskInfo, Workflow,
    WorkflowTaskStart,
};
use tokio::sync::oneshot;

use crate::Result;

/// A reply channel.
pub type Reply<T> = oneshot::Sender<Result<T>>;

/// Names a run; an empty `run_id` means the current run of the workflow id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RunRef {
    /// Namespace id.
    pub namespace_id: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Run id, or empty for the current run.
    pub run_id: String,
}

/// StartWorkflowExecution (and the start half of SignalWithStart).
#[derive(Debug, Clone)]
pub struct StartWorkflow {
    /// The new run; its `run_id` is used when a run is created.
    pub params: StartParams,
    /// `WorkflowIdReusePolicy` wire value.
    pub reuse_policy: i32,
    /// `WorkflowIdConflictPolicy` wire value.
    pub conflict_policy: i32,
    /// Eager workflow start: the identity of the starter's worker, which gets the first
    /// workflow task in the reply.
    pub eager_identity: Option<String>,
}

/// The outcome of a start.
#[derive(Debug, Clone, Default)]
pub struct StartOutcome {
    /// The run that is now current.
    pub run_id: String,
    /// False when an existing run was returned (dedupe or USE_EXISTING).
    pub started: bool,
    /// The first workflow task, started for the starter (eager workflow start).
    pub eager: Option<Box<WorkflowTaskStarted>>,
}

/// How an activity is named by a worker's response.
#[derive(Debug, Clone)]
pub enum ActivityTarget {
    /// By task token.
    Scheduled {
        /// Scheduled event id.
        scheduled_event_id: i64,
        /// Attempt the token was issued for.
        attempt: i32,
    },
    /// By activity id (the `...ById` RPCs).
    Id(String),
}

/// What a worker reports about an activity.
// Short-lived request values: boxing the failure would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ActivityReport {
    /// RespondActivityTaskCompleted.
    Completed(Option<Payloads>),
    /// RespondActivityTaskFailed.
    Failed(Option<Failure>, Option<Payloads>),
    /// RespondActivityTaskCanceled.
    Canceled(Option<Payloads>),
    /// RecordActivityTaskHeartbeat.
    Heartbeat(Option<Payloads>),
}

/// A started workflow task with the state needed to build the poll response.
#[derive(Debug, Clone)]
pub struct WorkflowTaskStarted {
    /// The run.
    pub run_id: String,
    /// Engine facts of the start.
    pub start: WorkflowTaskStart,
    /// The run's state after the start.
    pub state: MutableState,
    /// Buffered queries the task carries, by query id.
    pub queries: std::collections::HashMap<String, sundial_engine::api::query::v1::WorkflowQuery>,
}

/// The outcome of a workflow-task completion.
#[derive(Debug)]
pub struct CompletedWorkflowTask {
    /// Engine outcome (eager tasks, rejection).
    pub outcome: CompletionOutcome,
    /// The run's state after the completion.
    pub state: MutableState,
    /// Buffered queries the new workflow task (if any) carries.
    pub queries: std::collections::HashMap<String, sundial_engine::api::query::v1::WorkflowQuery>,
}

/// A started activity with its run's state.
#[derive(Debug, Clone)]
pub struct ActivityStarted {
    /// The activity.
    pub activity: ActivityInfo,
    /// The run's state.
    pub state: MutableState,
}

/// A change one run asks of another (cross-workflow transfer tasks) or a small maintenance
/// request: plain data, applied to the target run by [`RunChange::apply_to`].
#[derive(Debug, Clone)]
pub enum RunChange {
    /// The child's shard created the child: ChildWorkflowExecutionStarted in the parent.
    ChildStarted {
        /// The parent's StartChildWorkflowExecutionInitiated event id.
        initiated_event_id: i64,
        /// The child's run.
        child_run_id: String,
    },
    /// The child could not be started (its id is in use): StartChildWorkflowExecutionFailed.
    ChildStartFailed {
        /// The parent's initiated event id.
        initiated_event_id: i64,
    },
    /// A child closed: its closing event, recorded in the parent.
    ChildClosed {
        /// The parent's initiated event id.
        initiated_event_id: i64,
        /// The child's run.
        child_run_id: String,
        /// The child's closing event.
        close: Box<HistoryEvent>,
    },
    /// The parent recorded the child's start: the child's first workflow task may be scheduled.
    ScheduleFirstWorkflowTask,
    /// The outcome of a SignalExternalWorkflowExecution, in the sender.
    SignalExternalDone {
        /// The sender's initiated event id.
        initiated_event_id: i64,
        /// Whether the target got the signal.
        delivered: bool,
    },
    /// A cancellation request from another workflow (or a parent-close policy).
    RequestCancel {
        /// Reason.
        cause: String,
        /// The requesting workflow and its initiated event id (0 for a parent-close policy).
        external: Option<(WorkflowExecution, i64)>,
    },
    /// The outcome of a RequestCancelExternalWorkflowExecution, in the requester.
    CancelExternalDone {
        /// The requester's initiated event id.
        initiated_event_id: i64,
        /// Whether the target got the request.
        delivered: bool,
    },
    /// Termination by the server (a parent-close policy).
    Terminate {
        /// Reason.
        reason: String,
    },
    /// ResetStickyTaskQueue: the run's next workflow task goes to its normal queue.
    ResetStickyTaskQueue,
}

/// The identity the server writes on the events it causes itself.
pub const SERVER_IDENTITY: &str = "history-service";

impl RunChange {
    /// Applies the change to `wf`.
    pub fn apply_to(self, wf: &mut Workflow, env: &Env) -> sundial_engine::Result<()> {
        match self {
            RunChange::ChildStarted {
                initiated_event_id,
                child_run_id,
            } => wf.child_started(initiated_event_id, &child_run_id, env),
            RunChange::ChildStartFailed { initiated_event_id } => {
                wf.child_start_failed(initiated_event_id, env)
            }
            RunChange::ChildClosed {
                initiated_event_id,
                child_run_id,
                close,
            } => wf.child_closed(initiated_event_id, &child_run_id, &close, env),
            RunChange::ScheduleFirstWorkflowTask => {
                wf.schedule_first_workflow_task(env);
                Ok(())
            }
            RunChange::SignalExternalDone {
                initiated_event_id,
                delivered,
            } => wf.signal_external_done(initiated_event_id, delivered, env),
            RunChange::RequestCancel { cause, external } => {
                wf.request_cancel_from(cause, SERVER_IDENTITY.into(), external, env)
            }
            RunChange::CancelExternalDone {
                initiated_event_id,
                delivered,
            } => wf.cancel_external_done(initiated_event_id, delivered, env),
            RunChange::Terminate { reason } => {
                wf.terminate(reason, None, SERVER_IDENTITY.into(), env)
            }
            RunChange::ResetStickyTaskQueue => {
                wf.reset_sticky_task_queue();
                Ok(())
            }
        }
    }
}

/// ResetWorkflowExecution, with the histories the frontend read for it.
#[derive(Debug, Clone)]
pub struct ResetWorkflow {
    /// The current run of the workflow (empty run id); the op is applied where it lives.
    pub current: RunRef,
    /// The base run's state as read.
    pub base: MutableState,
    /// The base run's history (all of it).
    pub base_events: Vec<sundial_engine::api::history::v1::HistoryEvent>,
    /// The histories of the runs that followed the base run (continue-as-new, retries, cron),
    /// up to the current run, as read: run id, next event id then, events.
    pub later_runs: Vec<(
        String,
        i64,
        Vec<sundial_engine::api::history::v1::HistoryEvent>,
    )>,
    /// Reset point, reason and request id.
    pub params: sundial_engine::ResetParams,
    /// What is re-applied from after the reset point.
    pub reapply: sundial_engine::Reapply,
}

/// A request to a history shard.
pub enum Op {
    /// Start a run.
    Start(StartWorkflow, Reply<StartOutcome>),
    /// Signal a run, or start one and signal it.
    SignalWithStart(StartWorkflow, Signal, Reply<StartOutcome>),
    /// A poller takes a workflow task.
    RecordWorkflowTaskStarted {
        /// The run (exact run id).
        run: RunRef,
        /// Scheduled event id from the dispatched task.
        scheduled_event_id: i64,
        /// Attempt from the dispatched task.
        attempt: i32,
        /// Poll request id.
        request_id: String,
        /// Poller identity.
        identity: String,
        /// Build id from the poll's worker-version capabilities ("" when none).
        build_id: String,
        /// Queue the poller polled.
        polled_queue: String,
        /// Reply.
        reply: Reply<WorkflowTaskStarted>,
    },
    /// RespondWorkflowTaskCompleted.
    CompleteWorkflowTask {
        /// The run.
        run: RunRef,
        /// From the token.
        scheduled_event_id: i64,
        /// From the token.
        attempt: i32,
        /// From the token: (started event id, started time ms) of the start it was issued for.
        started: (i64, i64),
        /// The request.
        request: Box<RespondWorkflowTaskCompletedRequest>,
        /// Reply.
        reply: Reply<CompletedWorkflowTask>,
    },
    /// RespondWorkflowTaskFailed.
    FailWorkflowTask {
        /// The run.
        run: RunRef,
        /// From the token.
        scheduled_event_id: i64,
        /// From the token.
        attempt: i32,
        /// From the token: (started event id, started time ms) of the start it was issued for.
        started: (i64, i64),
        /// Cause.
        cause: WorkflowTaskFailedCause,
        /// Failure.
        failure: Option<Failure>,
        /// Identity.
        identity: String,
        /// Reply.
        reply: Reply<()>,
    },
    /// A poller takes an activity task.
    RecordActivityTaskStarted {
        /// The run.
        run: RunRef,
        /// Scheduled event id.
        scheduled_event_id: i64,
        /// Attempt.
        attempt: i32,
        /// Poll request id.
        request_id: String,
        /// Poller identity.
        identity: String,
        /// Build id from the poll's worker-version capabilities ("" when none).
        build_id: String,
        /// Reply.
        reply: Reply<ActivityStarted>,
    },
    /// An activity outcome or heartbeat; replies `cancel_requested`.
    ReportActivity {
        /// The run.
        run: RunRef,
        /// Which activity.
        target: ActivityTarget,
        /// What happened.
        report: ActivityReport,
        /// Identity.
        identity: String,
        /// Reply.
        reply: Reply<bool>,
    },
    /// SignalWorkflowExecution.
    Signal(RunRef, Signal, Reply<()>),
    /// RequestCancelWorkflowExecution.
    RequestCancel {
        /// The run.
        run: RunRef,
        /// Reason.
        cause: String,
        /// Identity.
        identity: String,
        /// Reply.
        reply: Reply<()>,
    },
    /// TerminateWorkflowExecution.
    Terminate {
        /// The run.
        run: RunRef,
        /// Reason.
        reason: String,
        /// Details.
        details: Option<Payloads>,
        /// Identity.
        identity: String,
        /// Reply.
        reply: Reply<()>,
    },
    /// Reads a run's state (DescribeWorkflowExecution, history reads, queries).
    Describe(RunRef, Reply<MutableState>),
    /// Waits until the run has events at or beyond `next_event_id`, or closes; replies with the
    /// state at that point (immediately if already so).
    Watch {
        /// The run.
        run: RunRef,
        /// Wake when `state.next_event_id` passes this.
        next_event_id: i64,
        /// Reply.
        reply: Reply<MutableState>,
    },
    /// A timer task is due (internal).
    Timer(i64, i64, TaskInfo),
    /// Workflow updates: UpdateWorkflowExecution, PollWorkflowExecutionUpdate and
    /// update-with-start (`updates.rs`).
    Update(crate::updates::UpdateOp),
    /// QueryWorkflow: how the query reaches the worker (`query_buffer.rs`).
    Query {
        /// The run.
        run: RunRef,
        /// The query.
        query: sundial_engine::api::query::v1::WorkflowQuery,
        /// `QueryRejectCondition` wire value.
        reject_condition: i32,
        /// Reply.
        reply: Reply<crate::query_buffer::QueryRoute>,
    },
    /// ResetWorkflowExecution: replies with the new run's id.
    Reset(Box<ResetWorkflow>, Reply<String>),
    /// DeleteWorkflowExecution: terminates a running run, then deletes it with its history.
    Delete(RunRef, Reply<()>),
    /// Applies a named change to a run (cross-workflow transfer tasks, ResetStickyTaskQueue).
    Apply {
        /// The run.
        run: RunRef,
        /// The change.
        change: RunChange,
        /// Reply.
        reply: Reply<()>,
    },
}

impl Op {
    /// The run the op concerns, if any (for loading).
    pub fn run(&self) -> Option<RunRef> {
        match self {
            Op::Start(s, _) | Op::SignalWithStart(s, _, _) => Some(RunRef {
                namespace_id: s.params.namespace_id.clone(),
                workflow_id: s.params.workflow_id.clone(),
                run_id: String::new(),
            }),
            Op::RecordWorkflowTaskStarted { run, .. }
            | Op::CompleteWorkflowTask { run, .. }
            | Op::FailWorkflowTask { run, .. }
            | Op::RecordActivityTaskStarted { run, .. }
            | Op::ReportActivity { run, .. }
            | Op::Signal(run, _, _)
            | Op::RequestCancel { run, .. }
            | Op::Terminate { run, .. }
            | Op::Describe(run, _)
            | Op::Apply { run, .. }
            | Op::Delete(run, _)
            | Op::Watch { run, .. } => Some(run.clone()),
            Op::Update(op) => Some(op.run()),
            Op::Reset(r, _) => Some(r.current.clone()),
            Op::Query { run, .. } => Some(run.clone()),
            Op::Timer(_, _, t) => Some(RunRef {
                namespace_id: t.namespace_id.clone(),
                workflow_id: t.workflow_id.clone(),
                run_id: t.run_id.clone(),
            }),
        }
    }

    /// Answers the op with an error (used when its batch cannot commit).
    pub fn fail(self, err: crate::Error) {
        match self {
            Op::Start(_, r) | Op::SignalWithStart(_, _, r) => drop(r.send(Err(err))),
            Op::RecordWorkflowTaskStarted { reply, .. } => drop(reply.send(Err(err))),
            Op::CompleteWorkflowTask { reply, .. } => drop(reply.send(Err(err))),
            Op::FailWorkflowTask { reply, .. } => drop(reply.send(Err(err))),
            Op::RecordActivityTaskStarted { reply, .. } => drop(reply.send(Err(err))),
            Op::ReportActivity { reply, .. } => drop(reply.send(Err(err))),
            Op::Signal(_, _, r) => drop(r.send(Err(err))),
            Op::RequestCancel { reply, .. }
            | Op::Terminate { reply, .. }
            | Op::Apply { reply, .. }
            | Op::Delete(_, reply) => drop(reply.send(Err(err))),
            Op::Describe(_, r) | Op::Watch { reply: r, .. } => drop(r.send(Err(err))),
            Op::Update(op) => op.fail(err),
            Op::Reset(_, r) => drop(r.send(Err(err))),
            Op::Query { reply, .. } => drop(reply.send(Err(err))),
            Op::Timer(..) => {}
        }
    }
}
