//! The persisted mutable state of one run and the tasks it schedules. These are protobuf
//! messages (prost derives) so the stored blob can evolve by adding fields.

use std::collections::BTreeMap;

use temporalio_protos::temporal::api::{
    common::v1::Payloads, failure::v1::Failure, history::v1::ActivityTaskScheduledEventAttributes,
    history::v1::HistoryEvent, history::v1::WorkflowExecutionStartedEventAttributes,
};

/// Everything the server knows about one run besides its history.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MutableState {
    /// Namespace id.
    #[prost(string, tag = "1")]
    pub namespace_id: String,
    /// Workflow id.
    #[prost(string, tag = "2")]
    pub workflow_id: String,
    /// Run id.
    #[prost(string, tag = "3")]
    pub run_id: String,
    /// The attributes the run started with (type, queue, timeouts, input, ...).
    #[prost(message, optional, tag = "4")]
    pub started: Option<WorkflowExecutionStartedEventAttributes>,
    /// `WorkflowExecutionStatus` wire value.
    #[prost(int32, tag = "5")]
    pub status: i32,
    /// Id the next history event gets.
    #[prost(int64, tag = "6")]
    pub next_event_id: i64,
    /// Started event id of the last completed workflow task (0 before the first).
    #[prost(int64, tag = "7")]
    pub last_completed_wft_started_event_id: i64,
    /// Start time, unix millis.
    #[prost(int64, tag = "8")]
    pub start_time_ms: i64,
    /// Close time, unix millis (0 while open).
    #[prost(int64, tag = "9")]
    pub close_time_ms: i64,
    /// Request id of the start, for dedupe.
    #[prost(string, tag = "10")]
    pub start_request_id: String,
    /// The pending workflow task, if any.
    #[prost(message, optional, tag = "11")]
    pub workflow_task: Option<WorkflowTaskInfo>,
    /// Pending activities by scheduled event id.
    #[prost(btree_map = "int64, message", tag = "12")]
    pub activities: BTreeMap<i64, ActivityInfo>,
    /// Pending timers by timer id.
    #[prost(btree_map = "string, message", tag = "13")]
    pub timers: BTreeMap<String, TimerInfo>,
    /// Events that arrived while a workflow task was started (placeholder ids).
    #[prost(message, repeated, tag = "14")]
    pub buffered_events: Vec<HistoryEvent>,
    /// Sticky task queue of the worker that completed the last task ("" when not sticky).
    #[prost(string, tag = "15")]
    pub sticky_task_queue: String,
    /// Schedule-to-start timeout of the sticky queue, millis.
    #[prost(int64, tag = "16")]
    pub sticky_schedule_to_start_ms: i64,
    /// True once a cancel was requested.
    #[prost(bool, tag = "17")]
    pub cancel_requested: bool,
    /// Id of the close event, once closed.
    #[prost(int64, tag = "18")]
    pub close_event_id: i64,
    /// The run that continued this one (continue-as-new), once closed that way.
    #[prost(string, tag = "19")]
    pub new_execution_run_id: String,
    /// Request ids already applied for signals (dedupe).
    #[prost(string, repeated, tag = "20")]
    pub signal_request_ids: Vec<String>,
    /// Number of signals received.
    #[prost(int64, tag = "21")]
    pub signal_count: i64,
    /// Version for the storage compare-and-set.
    #[prost(int64, tag = "22")]
    pub db_version: i64,
    /// Total size of the history, bytes (approximate).
    #[prost(int64, tag = "23")]
    pub history_size_bytes: i64,
    /// Attempt the next workflow task gets (transient attempts count here).
    #[prost(int32, tag = "24")]
    pub workflow_task_attempt: i32,
    /// When the first workflow task may run (after any start delay or backoff), unix millis.
    #[prost(int64, tag = "25")]
    pub execution_time_ms: i64,
    /// Pending child workflows by initiated event id.
    #[prost(btree_map = "int64, message", tag = "26")]
    pub children: BTreeMap<i64, ChildInfo>,
    /// Pending SignalExternalWorkflowExecution by initiated event id.
    #[prost(btree_map = "int64, message", tag = "27")]
    pub pending_signals: BTreeMap<i64, ExternalInfo>,
    /// Pending RequestCancelExternalWorkflowExecution by initiated event id.
    #[prost(btree_map = "int64, message", tag = "28")]
    pub pending_cancels: BTreeMap<i64, ExternalInfo>,
    /// Name of the namespace (events about children and external workflows carry it).
    #[prost(string, tag = "29")]
    pub namespace_name: String,
    /// True while a child run waits for its parent to record it before its first task.
    #[prost(bool, tag = "30")]
    pub first_workflow_task_deferred: bool,
    /// Accepted and completed workflow updates by update id: pointers to their events
    /// (admitted updates live only in memory, see `update.rs`).
    #[prost(btree_map = "string, message", tag = "40")]
    pub updates: BTreeMap<String, crate::update::UpdateInfo>,
    /// The run a reset of this run created (describe's `reset_run_id`).
    #[prost(string, tag = "41")]
    pub reset_run_id: String,
    /// When this run was made by a reset, unix millis (0 otherwise).
    #[prost(int64, tag = "42")]
    pub last_reset_time_ms: i64,
    /// Where the run can be reset to: the first workflow task each worker build completed.
    #[prost(message, repeated, tag = "43")]
    pub auto_reset_points: Vec<temporalio_protos::temporal::api::workflow::v1::ResetPointInfo>,
    /// Start time of the run this one was reset from (or its original), unix millis; 0 when
    /// the run was not made by a reset (its own start time is the original).
    #[prost(int64, tag = "44")]
    pub original_start_time_ms: i64,
}

/// A pending child workflow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ChildInfo {
    /// Its StartChildWorkflowExecutionInitiated event id.
    #[prost(int64, tag = "1")]
    pub initiated_event_id: i64,
    /// Its ChildWorkflowExecutionStarted event id (0 until started; placeholder while buffered).
    #[prost(int64, tag = "2")]
    pub started_event_id: i64,
    /// Child workflow id.
    #[prost(string, tag = "3")]
    pub workflow_id: String,
    /// Child run id, once started.
    #[prost(string, tag = "4")]
    pub run_id: String,
    /// Child namespace name.
    #[prost(string, tag = "5")]
    pub namespace: String,
    /// Child namespace id.
    #[prost(string, tag = "6")]
    pub namespace_id: String,
    /// Child workflow type.
    #[prost(string, tag = "7")]
    pub workflow_type: String,
    /// `ParentClosePolicy` wire value.
    #[prost(int32, tag = "8")]
    pub parent_close_policy: i32,
    /// The WorkflowTaskCompleted event of the command.
    #[prost(int64, tag = "9")]
    pub workflow_task_completed_event_id: i64,
    /// Opaque control string from the command.
    #[prost(string, tag = "10")]
    pub control: String,
}

/// A pending signal or cancel request to another workflow.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ExternalInfo {
    /// The initiated event id.
    #[prost(int64, tag = "1")]
    pub initiated_event_id: i64,
    /// Target namespace name.
    #[prost(string, tag = "2")]
    pub namespace: String,
    /// Target namespace id.
    #[prost(string, tag = "3")]
    pub namespace_id: String,
    /// Target workflow id.
    #[prost(string, tag = "4")]
    pub workflow_id: String,
    /// Target run id ("" for the current run).
    #[prost(string, tag = "5")]
    pub run_id: String,
    /// Opaque control string from the command.
    #[prost(string, tag = "6")]
    pub control: String,
    /// The WorkflowTaskCompleted event of the command.
    #[prost(int64, tag = "7")]
    pub workflow_task_completed_event_id: i64,
}

/// The pending workflow task.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WorkflowTaskInfo {
    /// Id of its WorkflowTaskScheduled event (virtual for a transient task).
    #[prost(int64, tag = "1")]
    pub scheduled_event_id: i64,
    /// Id of its WorkflowTaskStarted event, 0 until started.
    #[prost(int64, tag = "2")]
    pub started_event_id: i64,
    /// Attempt, from 1.
    #[prost(int32, tag = "3")]
    pub attempt: i32,
    /// Queue it was dispatched to.
    #[prost(string, tag = "4")]
    pub task_queue: String,
    /// True when dispatched to the sticky queue.
    #[prost(bool, tag = "5")]
    pub sticky: bool,
    /// Start-to-close timeout, millis.
    #[prost(int64, tag = "6")]
    pub timeout_ms: i64,
    /// Scheduled time, unix millis.
    #[prost(int64, tag = "7")]
    pub scheduled_time_ms: i64,
    /// Started time, unix millis.
    #[prost(int64, tag = "8")]
    pub started_time_ms: i64,
    /// Poll request id that started it (idempotent start).
    #[prost(string, tag = "9")]
    pub request_id: String,
    /// Identity of the poller that started it.
    #[prost(string, tag = "10")]
    pub identity: String,
    /// True when its Scheduled/Started events are not persisted (attempt > 1, nothing new).
    #[prost(bool, tag = "11")]
    pub transient: bool,
    /// `SuggestContinueAsNewReason` values when the history grew past a suggestion limit.
    #[prost(int32, repeated, tag = "12")]
    pub suggest_continue_as_new_reasons: Vec<i32>,
    /// A speculative task (workflow update): held in memory only, its events written only if
    /// it is kept (see `speculative.rs`); never stored.
    #[prost(bool, tag = "20")]
    pub speculative: bool,
    /// Build id of the worker that started it ("" when it sent none).
    #[prost(string, tag = "13")]
    pub worker_build_id: String,
}

/// A pending activity.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ActivityInfo {
    /// Its ActivityTaskScheduled event id.
    #[prost(int64, tag = "1")]
    pub scheduled_event_id: i64,
    /// The scheduled attributes with normalised timeouts and retry policy.
    #[prost(message, optional, tag = "2")]
    pub scheduled: Option<ActivityTaskScheduledEventAttributes>,
    /// Attempt, from 1.
    #[prost(int32, tag = "3")]
    pub attempt: i32,
    /// First scheduled time, unix millis.
    #[prost(int64, tag = "4")]
    pub first_scheduled_time_ms: i64,
    /// This attempt's scheduled time, unix millis.
    #[prost(int64, tag = "5")]
    pub scheduled_time_ms: i64,
    /// This attempt's started time, unix millis (0 while not started).
    #[prost(int64, tag = "6")]
    pub started_time_ms: i64,
    /// Identity of the worker running this attempt.
    #[prost(string, tag = "7")]
    pub started_identity: String,
    /// Poll request id that started this attempt.
    #[prost(string, tag = "8")]
    pub request_id: String,
    /// Failure of the previous attempt.
    #[prost(message, optional, tag = "9")]
    pub last_failure: Option<Failure>,
    /// Details of the last heartbeat.
    #[prost(message, optional, tag = "10")]
    pub heartbeat_details: Option<Payloads>,
    /// Time of the last heartbeat (or the start), unix millis.
    #[prost(int64, tag = "11")]
    pub last_heartbeat_time_ms: i64,
    /// True once the workflow requested cancellation.
    #[prost(bool, tag = "12")]
    pub cancel_requested: bool,
    /// The ActivityTaskCancelRequested event id.
    #[prost(int64, tag = "13")]
    pub cancel_requested_event_id: i64,
    /// Identity of the last failed attempt's worker.
    #[prost(string, tag = "14")]
    pub last_worker_identity: String,
    /// Build id of the worker running this attempt ("" when it sent none).
    #[prost(string, tag = "15")]
    pub started_build_id: String,
}

/// A pending user timer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimerInfo {
    /// User-given id.
    #[prost(string, tag = "1")]
    pub timer_id: String,
    /// Its TimerStarted event id.
    #[prost(int64, tag = "2")]
    pub started_event_id: i64,
    /// When it fires, unix millis.
    #[prost(int64, tag = "3")]
    pub expiry_time_ms: i64,
}

/// What a transfer or timer task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum TaskKind {
    /// Unset.
    Unspecified = 0,
    /// Transfer: push a workflow task to matching.
    DispatchWorkflowTask = 1,
    /// Transfer: push an activity task to matching.
    DispatchActivityTask = 2,
    /// Timer: a user timer fires.
    UserTimer = 3,
    /// Timer: an activity timeout (see `timeout_type`).
    ActivityTimeout = 4,
    /// Timer: an activity retry backoff ends; re-dispatch.
    ActivityRetry = 5,
    /// Timer: a workflow-task timeout (start-to-close or sticky schedule-to-start).
    WorkflowTaskTimeout = 6,
    /// Timer: the run timeout.
    WorkflowRunTimeout = 7,
    /// Timer: the execution timeout.
    WorkflowExecutionTimeout = 8,
    /// Timer: the first-workflow-task backoff ends.
    WorkflowBackoff = 9,
    /// Transfer: start a child workflow (`payload`: the initiated event's attributes).
    StartChild = 10,
    /// Transfer: signal another workflow (`payload`: the initiated event's attributes).
    SignalExternal = 11,
    /// Transfer: request cancellation of another workflow.
    CancelExternal = 12,
    /// Transfer: tell the parent that this (child) run closed (`payload`: the close event).
    RecordChildClose = 13,
    /// Transfer: apply a parent-close policy to a child (terminate or request cancel).
    ParentClosePolicy = 14,
    /// Timer: the namespace's retention has passed since the run closed: delete the run and
    /// its history.
    DeleteExecution = 15,
}

/// A transfer or timer task of a run; flat so every kind shares one encoding.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct TaskInfo {
    /// What to do.
    #[prost(enumeration = "TaskKind", tag = "1")]
    pub kind: i32,
    /// Namespace id.
    #[prost(string, tag = "2")]
    pub namespace_id: String,
    /// Workflow id.
    #[prost(string, tag = "3")]
    pub workflow_id: String,
    /// Run id.
    #[prost(string, tag = "4")]
    pub run_id: String,
    /// Scheduled event id of the workflow task or activity concerned.
    #[prost(int64, tag = "5")]
    pub scheduled_event_id: i64,
    /// Attempt of the workflow task or activity when the task was made.
    #[prost(int32, tag = "6")]
    pub attempt: i32,
    /// `TimeoutType` wire value, for timeouts.
    #[prost(int32, tag = "7")]
    pub timeout_type: i32,
    /// Task queue name, for dispatch.
    #[prost(string, tag = "8")]
    pub task_queue: String,
    /// True when the dispatch goes to a sticky queue.
    #[prost(bool, tag = "9")]
    pub sticky: bool,
    /// Timer id, for user timers.
    #[prost(string, tag = "10")]
    pub timer_id: String,
    /// When a timer task fires, unix millis (0 for transfer tasks).
    #[prost(int64, tag = "11")]
    pub fire_time_ms: i64,
    /// Normal queue name behind a sticky dispatch (the fallback).
    #[prost(string, tag = "12")]
    pub normal_task_queue: String,
    /// Schedule-to-start timeout for the dispatch, millis (0: none).
    #[prost(int64, tag = "13")]
    pub schedule_to_start_ms: i64,
    /// An encoded message the task carries (see [`TaskKind`]).
    #[prost(bytes = "vec", tag = "14")]
    pub payload: Vec<u8>,
    /// The other workflow's namespace id (children, external signals and cancels, parents).
    #[prost(string, tag = "15")]
    pub target_namespace_id: String,
    /// The other workflow's id.
    #[prost(string, tag = "16")]
    pub target_workflow_id: String,
    /// The other workflow's run id ("" for current).
    #[prost(string, tag = "17")]
    pub target_run_id: String,
    /// Only act if the target is a child of this run.
    #[prost(bool, tag = "18")]
    pub child_workflow_only: bool,
    /// For a child start: the root of the parent's tree of workflows (the child's root too).
    #[prost(message, optional, tag = "19")]
    pub root_execution: Option<temporalio_protos::temporal::api::common::v1::WorkflowExecution>,
    /// Held in memory only (a speculative workflow task's dispatch or timeout): never stored.
    #[prost(bool, tag = "30")]
    pub speculative: bool,
    /// For a speculative workflow-task timeout: the scheduled (schedule-to-start) or started
    /// (start-to-close) time of the task it guards, so a later task with the same ids is not
    /// timed out by it.
    #[prost(int64, tag = "31")]
    pub workflow_task_time_ms: i64,
}

impl TaskInfo {
    /// The decoded kind.
    pub fn task_kind(&self) -> TaskKind {
        TaskKind::try_from(self.kind).unwrap_or(TaskKind::Unspecified)
    }
}

/// What `current_executions.data` holds: facts needed to apply id-reuse rules without loading
/// the run.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CurrentRunInfo {
    /// `WorkflowExecutionStatus` wire value of the current run.
    #[prost(int32, tag = "1")]
    pub status: i32,
    /// Request id that started it.
    #[prost(string, tag = "2")]
    pub start_request_id: String,
    /// Start time, unix millis.
    #[prost(int64, tag = "3")]
    pub start_time_ms: i64,
}

/// What a task token carries (opaque to SDKs): enough to find the task and to reject a stale one.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TaskToken {
    /// Namespace id.
    #[prost(string, tag = "1")]
    pub namespace_id: String,
    /// Workflow id.
    #[prost(string, tag = "2")]
    pub workflow_id: String,
    /// Run id.
    #[prost(string, tag = "3")]
    pub run_id: String,
    /// Scheduled event id of the workflow task or activity.
    #[prost(int64, tag = "4")]
    pub scheduled_event_id: i64,
    /// Attempt it was handed out for.
    #[prost(int32, tag = "5")]
    pub attempt: i32,
    /// Started event id (workflow tasks).
    #[prost(int64, tag = "6")]
    pub started_event_id: i64,
    /// Activity id (activities).
    #[prost(string, tag = "7")]
    pub activity_id: String,
    /// Started time, unix millis: distinguishes two starts of the same attempt.
    #[prost(int64, tag = "8")]
    pub started_time_ms: i64,
    /// True for a query task (legacy query); `activity_id` then holds the query id.
    #[prost(bool, tag = "9")]
    pub query: bool,
}
