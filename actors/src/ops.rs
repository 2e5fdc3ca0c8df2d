//! The requests a history shard applies and the replies it gives: plain data, with no reply
//! channel or closure inside. A caller's reply is named by a [`Ticket`]; the actor that runs the
//! shard keeps the channel behind each ticket, the shard's logic only the ticket.

use crate::query_buffer::QueryRoute;
use crate::updates::{UpdateAnswer, UpdateRequest};
use crate::{Error, Result};
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

/// Names a reply the shard owes a caller. Tickets are handed out in order by whoever queues
/// requests; a request that is answered more than once uses consecutive tickets
/// ([`Request::tickets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ticket(pub u64);

impl Ticket {
    /// The ticket after this one (a request's second reply).
    pub fn next(self) -> Ticket {
        Ticket(self.0 + 1)
    }
}

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

/// A request to a history shard. Each is answered once, with the [`Response`] its doc names,
/// except a timer (never answered) and update-with-start (twice).
#[derive(Debug, Clone)]
pub enum Request {
    /// Start a run: [`StartOutcome`].
    Start(StartWorkflow),
    /// Signal a run, or start one and signal it: [`StartOutcome`].
    SignalWithStart(StartWorkflow, Signal),
    /// A poller takes a workflow task: [`WorkflowTaskStarted`].
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
    },
    /// RespondWorkflowTaskCompleted: [`CompletedWorkflowTask`].
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
    },
    /// RespondWorkflowTaskFailed: `()`.
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
    },
    /// A poller takes an activity task: [`ActivityStarted`].
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
    },
    /// An activity outcome or heartbeat: `bool`, whether cancellation was requested.
    ReportActivity {
        /// The run.
        run: RunRef,
        /// Which activity.
        target: ActivityTarget,
        /// What happened.
        report: ActivityReport,
        /// Identity.
        identity: String,
    },
    /// SignalWorkflowExecution: `()`.
    Signal(RunRef, Signal),
    /// RequestCancelWorkflowExecution: `()`.
    RequestCancel {
        /// The run.
        run: RunRef,
        /// Reason.
        cause: String,
        /// Identity.
        identity: String,
    },
    /// TerminateWorkflowExecution: `()`.
    Terminate {
        /// The run.
        run: RunRef,
        /// Reason.
        reason: String,
        /// Details.
        details: Option<Payloads>,
        /// Identity.
        identity: String,
    },
    /// Reads a run's state (DescribeWorkflowExecution, history reads, queries):
    /// [`MutableState`].
    Describe(RunRef),
    /// Waits until the run has events at or beyond `next_event_id`, or closes: the
    /// [`MutableState`] at that point (immediately if already so).
    Watch {
        /// The run.
        run: RunRef,
        /// Wake when `state.next_event_id` passes this.
        next_event_id: i64,
    },
    /// A timer task is due (internal; no reply): fire time, task id, task.
    Timer(i64, i64, TaskInfo),
    /// Workflow updates: UpdateWorkflowExecution, PollWorkflowExecutionUpdate and
    /// update-with-start (`updates.rs`): [`UpdateAnswer`] (update-with-start answers
    /// [`StartOutcome`] first).
    Update(UpdateRequest),
    /// QueryWorkflow: how the query reaches the worker, or its answer (`query_buffer.rs`):
    /// [`QueryRoute`].
    Query {
        /// The run.
        run: RunRef,
        /// The query.
        query: sundial_engine::api::query::v1::WorkflowQuery,
        /// `QueryRejectCondition` wire value.
        reject_condition: i32,
    },
    /// ResetWorkflowExecution: `String`, the new run's id.
    Reset(Box<ResetWorkflow>),
    /// DeleteWorkflowExecution: terminates a running run, then deletes it with its history:
    /// `()`.
    Delete(RunRef),
    /// Applies a named change to a run (cross-workflow transfer tasks, ResetStickyTaskQueue):
    /// `()`.
    Apply {
        /// The run.
        run: RunRef,
        /// The change.
        change: RunChange,
    },
}

impl Request {
    /// The run the request concerns, if any (for loading).
    pub fn run(&self) -> Option<RunRef> {
        match self {
            Request::Start(s) | Request::SignalWithStart(s, _) => Some(RunRef {
                namespace_id: s.params.namespace_id.clone(),
                workflow_id: s.params.workflow_id.clone(),
                run_id: String::new(),
            }),
            Request::RecordWorkflowTaskStarted { run, .. }
            | Request::CompleteWorkflowTask { run, .. }
            | Request::FailWorkflowTask { run, .. }
            | Request::RecordActivityTaskStarted { run, .. }
            | Request::ReportActivity { run, .. }
            | Request::Signal(run, _)
            | Request::RequestCancel { run, .. }
            | Request::Terminate { run, .. }
            | Request::Describe(run)
            | Request::Apply { run, .. }
            | Request::Delete(run)
            | Request::Watch { run, .. }
            | Request::Query { run, .. } => Some(run.clone()),
            Request::Update(u) => Some(u.run()),
            Request::Reset(r) => Some(r.current.clone()),
            Request::Timer(_, _, t) => Some(RunRef {
                namespace_id: t.namespace_id.clone(),
                workflow_id: t.workflow_id.clone(),
                run_id: t.run_id.clone(),
            }),
        }
    }

    /// How many replies the request gets, on consecutive tickets from its own.
    pub fn tickets(&self) -> u64 {
        match self {
            Request::Timer(..) => 0,
            Request::Update(UpdateRequest::UpdateWithStart { .. }) => 2,
            _ => 1,
        }
    }

    /// The request's name in metrics and traces (Temporal's history API names).
    pub fn name(&self) -> &'static str {
        match self {
            Request::Start(..) => "StartWorkflowExecution",
            Request::SignalWithStart(..) => "SignalWithStartWorkflowExecution",
            Request::RecordWorkflowTaskStarted { .. } => "RecordWorkflowTaskStarted",
            Request::CompleteWorkflowTask { .. } => "RespondWorkflowTaskCompleted",
            Request::FailWorkflowTask { .. } => "RespondWorkflowTaskFailed",
            Request::RecordActivityTaskStarted { .. } => "RecordActivityTaskStarted",
            Request::ReportActivity { .. } => "ReportActivity",
            Request::Signal(..) => "SignalWorkflowExecution",
            Request::RequestCancel { .. } => "RequestCancelWorkflowExecution",
            Request::Terminate { .. } => "TerminateWorkflowExecution",
            Request::Describe(..) => "DescribeMutableState",
            Request::Watch { .. } => "PollMutableState",
            Request::Timer(..) => "Timer",
            Request::Update(UpdateRequest::Poll { .. }) => "PollWorkflowExecutionUpdate",
            Request::Update(UpdateRequest::UpdateWithStart { .. }) => "ExecuteMultiOperation",
            Request::Update(..) => "UpdateWorkflowExecution",
            Request::Reset(..) => "ResetWorkflowExecution",
            Request::Query { .. } => "QueryWorkflow",
            Request::Delete(..) => "DeleteWorkflowExecution",
            Request::Apply { .. } => "ApplyRunChange",
        }
    }
}

/// A shard's reply to a [`Request`].
#[derive(Debug)]
pub enum Response {
    /// Done, nothing to report.
    Done,
    /// A start (or the start half of signal-with-start or update-with-start).
    Started(StartOutcome),
    /// A workflow task was started.
    WorkflowTaskStarted(Box<WorkflowTaskStarted>),
    /// A workflow task was completed.
    WorkflowTaskCompleted(Box<CompletedWorkflowTask>),
    /// An activity task was started.
    ActivityStarted(Box<ActivityStarted>),
    /// An activity report was recorded: whether cancellation was requested.
    CancelRequested(bool),
    /// A run's state.
    State(Box<MutableState>),
    /// A query's route or answer.
    Query(QueryRoute),
    /// How far an update got.
    Update(UpdateAnswer),
    /// A reset made this run.
    Reset(String),
}

/// The value a caller expects from a [`Response`]: each request's reply has one type.
pub trait FromResponse: Sized {
    /// The value, or the response given back when it is of another kind.
    fn from_response(response: Response) -> std::result::Result<Self, Response>;
}

macro_rules! from_response {
    ($($ty:ty => $pat:pat => $value:expr),* $(,)?) => {
        $(impl FromResponse for $ty {
            fn from_response(response: Response) -> std::result::Result<Self, Response> {
                match response {
                    $pat => Ok($value),
                    other => Err(other),
                }
            }
        })*
    };
}

from_response! {
    () => Response::Done => (),
    StartOutcome => Response::Started(s) => s,
    WorkflowTaskStarted => Response::WorkflowTaskStarted(s) => *s,
    CompletedWorkflowTask => Response::WorkflowTaskCompleted(c) => *c,
    ActivityStarted => Response::ActivityStarted(a) => *a,
    bool => Response::CancelRequested(c) => c,
    MutableState => Response::State(s) => *s,
    QueryRoute => Response::Query(q) => q,
    UpdateAnswer => Response::Update(u) => u,
    String => Response::Reset(r) => r,
}

/// Reads a shard's reply as the type the caller expects.
pub fn expect<T: FromResponse>(response: Result<Response>) -> Result<T> {
    T::from_response(response?).map_err(|other| {
        Error::Internal(format!(
            "history shard answered {other:?} where a {} was due",
            std::any::type_name::<T>()
        ))
    })
}
