//! The test driver: one run, a fake clock and everything the run persisted so far.
//!
//! Every step takes the run's [`Changes`](crate::Changes) and checks the invariants a store
//! relies on: event ids are 1..n, contiguous and in order; `next_event_id` follows the last
//! event; event types match their attributes; the pending workflow task points at real events;
//! the mutable state survives a prost round trip (what the store writes is what it reads); and
//! folding the history through the event applier rebuilds what the live path holds (so every
//! scenario of these tests checks the applier that reset uses against the live path).

use prost::Message;
use temporalio_protos::temporal::api::{
    command::v1::{
        CancelTimerCommandAttributes, CancelWorkflowExecutionCommandAttributes, Command,
        CompleteWorkflowExecutionCommandAttributes,
        ContinueAsNewWorkflowExecutionCommandAttributes, FailWorkflowExecutionCommandAttributes,
        RequestCancelActivityTaskCommandAttributes, ScheduleActivityTaskCommandAttributes,
        StartTimerCommandAttributes, command::Attributes as Cmd,
    },
    common::v1::{ActivityType, Payload, Payloads, RetryPolicy, WorkflowType},
    enums::v1::{CommandType, EventType, TaskQueueKind, WorkflowExecutionStatus},
    failure::v1::{ApplicationFailureInfo, Failure, failure::FailureInfo},
    history::v1::{HistoryEvent, WorkflowExecutionStartedEventAttributes},
    taskqueue::v1::{StickyExecutionAttributes, TaskQueue},
    workflowservice::v1::RespondWorkflowTaskCompletedRequest,
};

use crate::events::{BUFFERED_EVENT_ID, event_type_of};
use crate::time::duration;
use crate::{
    ActivityInfo, CompletionOutcome, Env, MutableState, Result, Signal, StartParams, TaskInfo,
    TaskKind, Workflow, WorkflowTaskStart,
};

pub use temporalio_protos::temporal::api::enums::v1::EventType as E;

/// The fake clock's start, unix millis.
pub const T0: i64 = 1_700_000_000_000;
/// The run's normal task queue.
pub const TASK_QUEUE: &str = "tq";
/// The sticky queue a worker asks for.
pub const STICKY_QUEUE: &str = "tq-sticky-worker-1";
/// Identity of the test worker.
pub const WORKER: &str = "worker-1";
/// Build id the test worker reports in its polls.
pub const WORKER_BUILD_ID: &str = "build-1";

/// The attributes of an event as the named variant; panics (with the event) otherwise.
macro_rules! attrs {
    ($event:expr, $variant:ident) => {
        match &$event.attributes {
            Some($crate::api::history::v1::history_event::Attributes::$variant(a)) => a,
            other => panic!("expected {} but got {:?}", stringify!($variant), other),
        }
    };
}
pub(crate) use attrs;

/// One run under test.
pub struct Driver {
    /// The run.
    pub wf: Workflow,
    /// Now, unix millis.
    pub now_ms: i64,
    /// Every event the run persisted, in order.
    pub history: Vec<HistoryEvent>,
    /// Every task the run emitted, in order.
    pub tasks: Vec<TaskInfo>,
    /// Events of the last step.
    pub last_events: Vec<HistoryEvent>,
    /// Tasks of the last step.
    pub last_tasks: Vec<TaskInfo>,
    /// The run a continue-as-new created.
    pub new_run: Option<Workflow>,
    /// The limits every step runs under.
    pub limits: crate::Limits,
    polls: u32,
}

/// Start parameters of the default run: `wf-1`/`run-1`, type `Wf`, queue [`TASK_QUEUE`].
pub fn start_params() -> StartParams {
    StartParams {
        namespace_id: "ns-1".into(),
        workflow_id: "wf-1".into(),
        run_id: "run-1".into(),
        request_id: "start-1".into(),
        attributes: WorkflowExecutionStartedEventAttributes {
            workflow_type: Some(WorkflowType { name: "Wf".into() }),
            task_queue: Some(TaskQueue {
                name: TASK_QUEUE.into(),
                kind: TaskQueueKind::Normal as i32,
                normal_name: String::new(),
            }),
            identity: "client-1".into(),
            ..Default::default()
        },
        signal: None,
        namespace_name: "default".into(),
        defer_first_workflow_task: false,
    }
}

impl Driver {
    /// Starts the default run at [`T0`].
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// Starts a run at [`T0`] after `adjust` edits the default parameters.
    pub fn start_with(adjust: impl FnOnce(&mut StartParams)) -> Self {
        let mut params = start_params();
        adjust(&mut params);
        let env = Env::new(T0, "unused");
        let wf = Workflow::start(params, &env).expect("the run starts");
        Self::from_workflow(wf, T0)
    }

    /// Drives an existing run (a new run of a continue-as-new, a reloaded state).
    pub fn from_workflow(wf: Workflow, now_ms: i64) -> Self {
        let mut driver = Self {
            wf,
            now_ms,
            history: Vec::new(),
            tasks: Vec::new(),
            last_events: Vec::new(),
            last_tasks: Vec::new(),
            new_run: None,
            limits: crate::Limits::default(),
            polls: 0,
        };
        driver.collect();
        driver
    }

    /// A driver over the state as a store would load it back (encoded, decoded), with the same
    /// history and clock.
    pub fn reload(&self) -> Self {
        Self {
            wf: Workflow::from_state(assert_round_trip(&self.wf.state)),
            now_ms: self.now_ms,
            history: self.history.clone(),
            tasks: self.tasks.clone(),
            last_events: Vec::new(),
            last_tasks: Vec::new(),
            new_run: None,
            limits: crate::Limits::default(),
            polls: self.polls,
        }
    }

    /// The environment of the next request.
    pub fn env(&self) -> Env {
        Env {
            limits: self.limits,
            ..Env::new(self.now_ms, "run-2")
        }
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, ms: i64) -> &mut Self {
        self.now_ms += ms;
        self
    }

    /// Takes the run's changes and checks the invariants of the module doc.
    pub fn collect(&mut self) {
        let changes = self.wf.take_changes();
        for event in &changes.events {
            assert_eq!(
                event.event_id,
                self.history.len() as i64 + 1,
                "event ids must be contiguous; history so far {:?}, new {:?}",
                types_of(&self.history),
                types_of(&changes.events),
            );
            let attributes = event.attributes.as_ref().expect("events carry attributes");
            assert_eq!(event.event_type, event_type_of(attributes) as i32);
            assert!(event.event_time.is_some(), "events carry a time");
            self.history.push(event.clone());
        }
        assert_eq!(
            self.wf.state.next_event_id,
            self.history.len() as i64 + 1,
            "next_event_id follows the last event"
        );
        for event in &self.wf.state.buffered_events {
            assert_eq!(event.event_id, BUFFERED_EVENT_ID);
        }
        if let Some(task) = &self.wf.state.workflow_task {
            if !task.transient && !task.speculative {
                assert_eq!(
                    self.event(task.scheduled_event_id).event_type,
                    E::WorkflowTaskScheduled as i32
                );
                if task.started_event_id != 0 {
                    assert_eq!(
                        self.event(task.started_event_id).event_type,
                        E::WorkflowTaskStarted as i32
                    );
                }
            } else if task.started_event_id != 0 {
                assert_eq!(task.scheduled_event_id, self.wf.state.next_event_id);
                assert_eq!(task.started_event_id, task.scheduled_event_id + 1);
            }
        }
        for task in &changes.tasks {
            assert_eq!(task.run_id, self.wf.state.run_id);
            assert_eq!(
                &TaskInfo::decode(task.encode_to_vec().as_slice()).unwrap(),
                task
            );
        }
        assert_round_trip(&self.wf.state);
        self.assert_history_rebuilds_state();
        self.tasks.extend(changes.tasks.iter().cloned());
        self.last_events = changes.events;
        self.last_tasks = changes.tasks;
        if let Some(run) = changes.new_run {
            self.new_run = Some(*run);
        }
    }

    /// Folds the history so far, and the events waiting in the buffer, through the event
    /// applier into a new state: what the events tell must be what the live state holds.
    fn assert_history_rebuilds_state(&self) {
        let live = &self.wf.state;
        let mut folded = MutableState::default();
        for event in self.history.iter().chain(&live.buffered_events) {
            folded.apply_event(event);
        }
        assert_eq!(
            EventFacts::of(&folded),
            EventFacts::of(live),
            "the history folded (left) differs from the live state (right); history {:?}, buffered {:?}",
            types_of(&self.history),
            types_of(&live.buffered_events),
        );
    }

    /// Runs `step`, which must fail without touching the run; returns what it returned.
    pub fn unchanged<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> T {
        let before = self.wf.state.clone();
        let out = step(self);
        assert_eq!(
            self.wf.state, before,
            "a refused request leaves the state alone"
        );
        assert!(self.last_events.is_empty() && self.last_tasks.is_empty());
        out
    }

    // ---- reading ----

    /// The event with this id.
    pub fn event(&self, id: i64) -> &HistoryEvent {
        &self.history[usize::try_from(id - 1).expect("event ids start at 1")]
    }

    /// The event types of the whole history.
    pub fn types(&self) -> Vec<EventType> {
        types_of(&self.history)
    }

    /// The event types from id `from` on.
    pub fn types_from(&self, from: i64) -> Vec<EventType> {
        types_of(&self.history[usize::try_from(from - 1).unwrap()..])
    }

    /// The event types of the last step.
    pub fn last_types(&self) -> Vec<EventType> {
        types_of(&self.last_events)
    }

    /// The event types waiting in the buffer.
    pub fn buffered_types(&self) -> Vec<EventType> {
        types_of(&self.wf.state.buffered_events)
    }

    /// The last task of this kind emitted so far.
    pub fn task(&self, kind: TaskKind) -> TaskInfo {
        self.task_where(kind, |_| true)
    }

    /// The last task of this kind emitted so far that satisfies `pred`.
    pub fn task_where(&self, kind: TaskKind, pred: impl Fn(&TaskInfo) -> bool) -> TaskInfo {
        self.tasks
            .iter()
            .rev()
            .find(|t| t.task_kind() == kind && pred(t))
            .cloned()
            .unwrap_or_else(|| panic!("no {kind:?} task emitted: {:?}", self.tasks))
    }

    /// The kinds of the tasks of the last step.
    pub fn last_task_kinds(&self) -> Vec<TaskKind> {
        self.last_tasks.iter().map(TaskInfo::task_kind).collect()
    }

    /// The last activity-timeout task of this activity and type.
    pub fn activity_timeout(
        &self,
        scheduled_event_id: i64,
        timeout_type: temporalio_protos::temporal::api::enums::v1::TimeoutType,
    ) -> TaskInfo {
        self.task_where(TaskKind::ActivityTimeout, |t| {
            t.scheduled_event_id == scheduled_event_id && t.timeout_type == timeout_type as i32
        })
    }

    /// The pending activity scheduled by this event.
    pub fn activity(&self, scheduled_event_id: i64) -> &ActivityInfo {
        self.wf
            .state
            .activities
            .get(&scheduled_event_id)
            .unwrap_or_else(|| panic!("activity {scheduled_event_id} is not pending"))
    }

    /// `(scheduled_event_id, attempt)` of the started workflow task.
    pub fn started_wft(&self) -> (i64, i32) {
        let task = self
            .wf
            .state
            .workflow_task
            .as_ref()
            .filter(|t| t.started_event_id != 0)
            .expect("a workflow task is started");
        (task.scheduled_event_id, task.attempt)
    }

    // ---- workflow tasks ----

    /// A poller of the pending task's queue starts it.
    pub fn poll_wft(&mut self) -> WorkflowTaskStart {
        let task = self
            .wf
            .state
            .workflow_task
            .clone()
            .expect("a workflow task is pending");
        self.poll_wft_from(&task.task_queue)
    }

    /// A poller of `queue` starts the pending task.
    pub fn poll_wft_from(&mut self, queue: &str) -> WorkflowTaskStart {
        let task = self
            .wf
            .state
            .workflow_task
            .clone()
            .expect("a workflow task is pending");
        self.polls += 1;
        let request_id = format!("wft-poll-{}", self.polls);
        self.try_start_wft(task.scheduled_event_id, task.attempt, &request_id, queue)
            .expect("the workflow task starts")
    }

    /// RecordWorkflowTaskStarted as matching calls it.
    pub fn try_start_wft(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        request_id: &str,
        queue: &str,
    ) -> Result<WorkflowTaskStart> {
        let env = self.env();
        let out = self.wf.record_workflow_task_started(
            scheduled_event_id,
            attempt,
            request_id,
            WORKER,
            WORKER_BUILD_ID,
            queue,
            &env,
        );
        self.collect();
        out
    }

    /// Completes the started task with these commands.
    pub fn complete_wft(&mut self, commands: Vec<Command>) -> CompletionOutcome {
        self.complete_wft_with(completion(commands))
    }

    /// Completes the started task with this request.
    pub fn complete_wft_with(
        &mut self,
        request: RespondWorkflowTaskCompletedRequest,
    ) -> CompletionOutcome {
        let (scheduled, attempt) = self.started_wft();
        self.try_complete_wft(scheduled, attempt, request)
            .expect("the completion applies")
    }

    /// RespondWorkflowTaskCompleted with the token's ids.
    pub fn try_complete_wft(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        request: RespondWorkflowTaskCompletedRequest,
    ) -> Result<CompletionOutcome> {
        let env = self.env();
        let out = self
            .wf
            .complete_workflow_task(scheduled_event_id, attempt, request, &env);
        self.collect();
        out
    }

    /// RespondWorkflowTaskFailed for the started task.
    pub fn fail_wft(&mut self) {
        let (scheduled, attempt) = self.started_wft();
        let env = self.env();
        self.wf
            .fail_workflow_task(
                scheduled,
                attempt,
                temporalio_protos::temporal::api::enums::v1::WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
                Some(failure("panic in workflow code")),
                WORKER.into(),
                &env,
            )
            .expect("the failure applies");
        self.collect();
    }

    // ---- activities ----

    /// A worker starts the activity's current attempt.
    pub fn start_activity(&mut self, scheduled_event_id: i64) -> ActivityInfo {
        let attempt = self.activity(scheduled_event_id).attempt;
        self.polls += 1;
        let request_id = format!("activity-poll-{}", self.polls);
        self.try_start_activity(scheduled_event_id, attempt, &request_id)
            .expect("the activity starts")
    }

    /// RecordActivityTaskStarted as matching calls it.
    pub fn try_start_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        request_id: &str,
    ) -> Result<ActivityInfo> {
        let env = self.env();
        let out = self.wf.record_activity_task_started(
            scheduled_event_id,
            attempt,
            request_id,
            WORKER,
            WORKER_BUILD_ID,
            &env,
        );
        self.collect();
        out
    }

    /// The worker completes the current attempt.
    pub fn complete_activity(&mut self, scheduled_event_id: i64) {
        let attempt = self.activity(scheduled_event_id).attempt;
        self.try_complete_activity(scheduled_event_id, attempt)
            .expect("the activity completes");
    }

    /// RespondActivityTaskCompleted with the token's ids.
    pub fn try_complete_activity(&mut self, scheduled_event_id: i64, attempt: i32) -> Result<()> {
        let env = self.env();
        let out = self.wf.complete_activity(
            scheduled_event_id,
            attempt,
            Some(payloads("result")),
            WORKER.into(),
            &env,
        );
        self.collect();
        out
    }

    /// The worker fails the current attempt.
    pub fn fail_activity(&mut self, scheduled_event_id: i64, failure: Failure) {
        let attempt = self.activity(scheduled_event_id).attempt;
        self.try_fail_activity(scheduled_event_id, attempt, failure)
            .expect("the failure applies");
    }

    /// RespondActivityTaskFailed with the token's ids.
    pub fn try_fail_activity(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        failure: Failure,
    ) -> Result<()> {
        let env = self.env();
        let out = self.wf.fail_activity(
            scheduled_event_id,
            attempt,
            Some(failure),
            None,
            WORKER.into(),
            &env,
        );
        self.collect();
        out
    }

    /// The worker heartbeats the current attempt; returns cancel_requested.
    pub fn heartbeat(&mut self, scheduled_event_id: i64, details: &str) -> bool {
        let attempt = self.activity(scheduled_event_id).attempt;
        self.try_heartbeat(scheduled_event_id, attempt, details)
            .expect("the heartbeat applies")
    }

    /// RecordActivityTaskHeartbeat with the token's ids.
    pub fn try_heartbeat(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        details: &str,
    ) -> Result<bool> {
        let env = self.env();
        let out =
            self.wf
                .heartbeat_activity(scheduled_event_id, attempt, Some(payloads(details)), &env);
        self.collect();
        out
    }

    /// RespondActivityTaskCanceled for the current attempt.
    pub fn cancel_activity(&mut self, scheduled_event_id: i64) {
        let attempt = self.activity(scheduled_event_id).attempt;
        let env = self.env();
        self.wf
            .cancel_activity(
                scheduled_event_id,
                attempt,
                Some(payloads("canceled")),
                WORKER.into(),
                &env,
            )
            .expect("the cancellation applies");
        self.collect();
    }

    // ---- the run ----

    /// Signals the run.
    pub fn signal(&mut self, name: &str) {
        self.try_signal(Signal {
            name: name.into(),
            input: Some(payloads(name)),
            identity: "client-1".into(),
            ..Default::default()
        })
        .expect("the signal applies");
    }

    /// SignalWorkflowExecution.
    pub fn try_signal(&mut self, signal: Signal) -> Result<()> {
        let env = self.env();
        let out = self.wf.signal(signal, &env);
        self.collect();
        out
    }

    /// RequestCancelWorkflowExecution.
    pub fn request_cancel(&mut self) -> Result<()> {
        let env = self.env();
        let out = self
            .wf
            .request_cancel("cancel it".into(), "client-1".into(), &env);
        self.collect();
        out
    }

    /// TerminateWorkflowExecution.
    pub fn terminate(&mut self) -> Result<()> {
        let env = self.env();
        let out = self.wf.terminate(
            "terminate it".into(),
            Some(payloads("why")),
            "client-1".into(),
            &env,
        );
        self.collect();
        out
    }

    /// A timer task fires: the clock moves to its fire time and the engine handles it.
    pub fn fire(&mut self, task: &TaskInfo) {
        self.try_fire(task).expect("the timer task applies");
    }

    /// A timer task fires; returns what the engine said.
    pub fn try_fire(&mut self, task: &TaskInfo) -> Result<()> {
        assert_ne!(task.fire_time_ms, 0, "{task:?} is not a timer task");
        self.now_ms = self.now_ms.max(task.fire_time_ms);
        let env = self.env();
        let out = match task.task_kind() {
            TaskKind::UserTimer => self.wf.fire_timer(task, &env),
            TaskKind::ActivityTimeout => self.wf.activity_timed_out(task, &env),
            TaskKind::ActivityRetry => self.wf.activity_retry_due(task, &env),
            TaskKind::WorkflowTaskTimeout => self.wf.workflow_task_timed_out(task, &env),
            TaskKind::WorkflowRunTimeout | TaskKind::WorkflowExecutionTimeout => {
                self.wf.time_out(&env)
            }
            TaskKind::WorkflowBackoff => self.wf.backoff_elapsed(&env),
            kind => panic!("{kind:?} is not a timer task"),
        };
        self.collect();
        out
    }
}

/// The event types of some events.
pub fn types_of(events: &[HistoryEvent]) -> Vec<EventType> {
    events
        .iter()
        .map(|e| EventType::try_from(e.event_type).unwrap_or_default())
        .collect()
}

/// Encodes and decodes the state; the copy must equal the original.
pub fn assert_round_trip(state: &MutableState) -> MutableState {
    let decoded = MutableState::decode(state.encode_to_vec().as_slice()).expect("state decodes");
    assert_eq!(
        &decoded, state,
        "mutable state must survive a prost round trip"
    );
    decoded
}

/// What a run's history tells about its state (the rest is kept by the live path alone:
/// attempts, heartbeats, task ids, workflow tasks that write no events).
#[derive(Debug, PartialEq)]
struct EventFacts {
    /// Pending activities: scheduled id → (activity id, cancel requested at).
    activities: Vec<(i64, String, i64)>,
    /// Pending timers: id → (started id, expiry).
    timers: Vec<(String, i64, i64)>,
    /// Children: initiated id → (workflow id, started id, run id, parent-close policy).
    children: Vec<(i64, String, i64, String, i32)>,
    pending_signals: Vec<(i64, String, String)>,
    pending_cancels: Vec<(i64, String, String)>,
    signal_count: i64,
    signal_request_ids: Vec<String>,
    cancel_requested: bool,
    /// Accepted updates: id → (admitted, accepted, completed event ids).
    updates: Vec<(String, i64, i64, i64)>,
    started: Option<WorkflowExecutionStartedEventAttributes>,
    /// The workflow task, when it has events: (scheduled id, started id).
    workflow_task: Option<(i64, i64)>,
    last_completed_wft_started_event_id: i64,
    /// Status, close event id and close time.
    closed: (i32, i64, i64),
}

impl EventFacts {
    fn of(state: &MutableState) -> Self {
        let external = |m: &std::collections::BTreeMap<i64, crate::state::ExternalInfo>| {
            m.values()
                .map(|e| {
                    (
                        e.initiated_event_id,
                        e.workflow_id.clone(),
                        e.run_id.clone(),
                    )
                })
                .collect()
        };
        Self {
            activities: state
                .activities
                .values()
                .map(|a| {
                    let id = a.scheduled.as_ref().map_or("", |s| s.activity_id.as_str());
                    (
                        a.scheduled_event_id,
                        id.to_string(),
                        a.cancel_requested_event_id,
                    )
                })
                .collect(),
            timers: state
                .timers
                .values()
                .map(|t| (t.timer_id.clone(), t.started_event_id, t.expiry_time_ms))
                .collect(),
            children: state
                .children
                .values()
                .map(|c| {
                    (
                        c.initiated_event_id,
                        c.workflow_id.clone(),
                        c.started_event_id,
                        c.run_id.clone(),
                        c.parent_close_policy,
                    )
                })
                .collect(),
            pending_signals: external(&state.pending_signals),
            pending_cancels: external(&state.pending_cancels),
            signal_count: state.signal_count,
            signal_request_ids: state.signal_request_ids.clone(),
            cancel_requested: state.cancel_requested,
            // An update admitted in history that the worker rejects writes nothing more: the
            // live state forgets it, its history cannot tell. Accepted ones are in history.
            updates: state
                .updates
                .iter()
                .filter(|(_, u)| u.accepted_event_id != 0)
                .map(|(id, u)| {
                    (
                        id.clone(),
                        u.admitted_event_id,
                        u.accepted_event_id,
                        u.completed_event_id,
                    )
                })
                .collect(),
            started: state.started.clone(),
            workflow_task: state
                .workflow_task
                .as_ref()
                .filter(|t| !t.transient && !t.speculative)
                .map(|t| (t.scheduled_event_id, t.started_event_id)),
            last_completed_wft_started_event_id: state.last_completed_wft_started_event_id,
            closed: if state.close_event_id == 0 {
                (WorkflowExecutionStatus::Running as i32, 0, 0)
            } else {
                (state.status, state.close_event_id, state.close_time_ms)
            },
        }
    }
}

// ---- requests and commands ----

/// A completion carrying these commands.
pub fn completion(commands: Vec<Command>) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        commands,
        identity: WORKER.into(),
        ..Default::default()
    }
}

/// A completion carrying these commands that asks for [`STICKY_QUEUE`] (5 s schedule-to-start).
pub fn sticky_completion(commands: Vec<Command>) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        sticky_attributes: Some(StickyExecutionAttributes {
            worker_task_queue: Some(TaskQueue {
                name: STICKY_QUEUE.into(),
                kind: TaskQueueKind::Sticky as i32,
                normal_name: TASK_QUEUE.into(),
            }),
            schedule_to_start_timeout: Some(duration(5_000)),
        }),
        ..completion(commands)
    }
}

fn command(command_type: CommandType, attributes: Cmd) -> Command {
    Command {
        command_type: command_type as i32,
        attributes: Some(attributes),
        ..Default::default()
    }
}

/// ScheduleActivityTask `id` with a start-to-close timeout, edited by `adjust`.
pub fn schedule_activity_with(
    id: &str,
    start_to_close_ms: i64,
    adjust: impl FnOnce(&mut ScheduleActivityTaskCommandAttributes),
) -> Command {
    let mut attributes = ScheduleActivityTaskCommandAttributes {
        activity_id: id.into(),
        activity_type: Some(ActivityType { name: "Act".into() }),
        input: Some(payloads("input")),
        start_to_close_timeout: (start_to_close_ms > 0).then(|| duration(start_to_close_ms)),
        ..Default::default()
    };
    adjust(&mut attributes);
    command(
        CommandType::ScheduleActivityTask,
        Cmd::ScheduleActivityTaskCommandAttributes(attributes),
    )
}

/// ScheduleActivityTask `id` with a 10 s start-to-close timeout and the default retry policy.
pub fn schedule_activity(id: &str) -> Command {
    schedule_activity_with(id, 10_000, |_| {})
}

/// A retry policy: `initial_ms`, coefficient 2, at most `maximum_attempts` (0: unlimited).
pub fn retry_policy(initial_ms: i64, maximum_attempts: i32) -> RetryPolicy {
    RetryPolicy {
        initial_interval: Some(duration(initial_ms)),
        backoff_coefficient: 2.0,
        maximum_attempts,
        ..Default::default()
    }
}

/// RequestCancelActivityTask.
pub fn request_cancel_activity(scheduled_event_id: i64) -> Command {
    command(
        CommandType::RequestCancelActivityTask,
        Cmd::RequestCancelActivityTaskCommandAttributes(
            RequestCancelActivityTaskCommandAttributes { scheduled_event_id },
        ),
    )
}

/// StartTimer `id` firing after `ms`.
pub fn start_timer(id: &str, ms: i64) -> Command {
    command(
        CommandType::StartTimer,
        Cmd::StartTimerCommandAttributes(StartTimerCommandAttributes {
            timer_id: id.into(),
            start_to_fire_timeout: Some(duration(ms)),
        }),
    )
}

/// CancelTimer `id`.
pub fn cancel_timer(id: &str) -> Command {
    command(
        CommandType::CancelTimer,
        Cmd::CancelTimerCommandAttributes(CancelTimerCommandAttributes {
            timer_id: id.into(),
        }),
    )
}

/// CompleteWorkflowExecution.
pub fn complete_workflow() -> Command {
    command(
        CommandType::CompleteWorkflowExecution,
        Cmd::CompleteWorkflowExecutionCommandAttributes(
            CompleteWorkflowExecutionCommandAttributes {
                result: Some(payloads("done")),
            },
        ),
    )
}

/// FailWorkflowExecution.
pub fn fail_workflow() -> Command {
    command(
        CommandType::FailWorkflowExecution,
        Cmd::FailWorkflowExecutionCommandAttributes(FailWorkflowExecutionCommandAttributes {
            failure: Some(failure("workflow failed")),
        }),
    )
}

/// CancelWorkflowExecution.
pub fn cancel_workflow() -> Command {
    command(
        CommandType::CancelWorkflowExecution,
        Cmd::CancelWorkflowExecutionCommandAttributes(CancelWorkflowExecutionCommandAttributes {
            details: Some(payloads("bye")),
        }),
    )
}

/// ContinueAsNewWorkflowExecution with new input and everything else inherited.
pub fn continue_as_new() -> Command {
    command(
        CommandType::ContinueAsNewWorkflowExecution,
        Cmd::ContinueAsNewWorkflowExecutionCommandAttributes(
            ContinueAsNewWorkflowExecutionCommandAttributes {
                input: Some(payloads("next")),
                ..Default::default()
            },
        ),
    )
}

// ---- values ----

/// One JSON-less payload holding `data`.
pub fn payloads(data: &str) -> Payloads {
    Payloads {
        payloads: vec![Payload {
            data: data.as_bytes().to_vec(),
            ..Default::default()
        }],
    }
}

/// A plain failure.
pub fn failure(message: &str) -> Failure {
    Failure {
        message: message.into(),
        ..Default::default()
    }
}

/// An application failure of `kind`.
pub fn app_failure(message: &str, kind: &str, non_retryable: bool) -> Failure {
    Failure {
        message: message.into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(
            ApplicationFailureInfo {
                r#type: kind.into(),
                non_retryable,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}
