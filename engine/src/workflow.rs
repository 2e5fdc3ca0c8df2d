//! One run's state machine: the [`Workflow`] wraps a [`MutableState`] and records, per request,
//! the [`Changes`] to persist (new events and tasks). Time and ids come in through [`Env`].
//!
//! Activity, timer and workflow-task transitions live in sibling modules; this one holds event
//! appending, the buffer, start and close.

use std::mem;

use temporalio_protos::temporal::api::{
    common::v1::{Header, Payloads},
    enums::v1::{ContinueAsNewInitiator, EventType, RetryState, WorkflowExecutionStatus},
    history::v1::{
        HistoryEvent, WorkflowExecutionCancelRequestedEventAttributes,
        WorkflowExecutionSignaledEventAttributes, WorkflowExecutionStartedEventAttributes,
        WorkflowExecutionTerminatedEventAttributes, WorkflowExecutionTimedOutEventAttributes,
        history_event::Attributes,
    },
};

use temporalio_protos::temporal::api::{
    enums::v1::TimeoutType,
    failure::v1::{Failure, TimeoutFailureInfo, failure::FailureInfo},
};

use crate::events::{
    BUFFERED_EVENT_ID, child_close_started_id_mut, event_type_of, is_bufferable, reorder_buffer,
};
use crate::state::{MutableState, TaskInfo, TaskKind};
use crate::time::{duration, duration_ms, timestamp};
use crate::{Error, Result};

/// Default workflow-task start-to-close timeout.
pub const DEFAULT_WORKFLOW_TASK_TIMEOUT_MS: i64 = 10_000;
/// Upper bound of the workflow-task timeout.
pub const MAX_WORKFLOW_TASK_TIMEOUT_MS: i64 = 120_000;

/// Inputs the engine may not produce itself.
#[derive(Debug, Clone)]
pub struct Env {
    /// Now, unix millis.
    pub now_ms: i64,
    /// A fresh run id, used if the request creates a run (continue-as-new).
    pub new_run_id: String,
    /// The platform limits in force.
    pub limits: crate::Limits,
    /// The custom search attributes of the run's namespace, when known (upserts naming others
    /// are refused); `None` skips the check.
    pub search_attributes: Option<std::sync::Arc<crate::search_attributes::SearchAttributeTypes>>,
    /// The namespace's retention (millis), when known: a closed run is deleted this long
    /// after it closed.
    pub retention_ms: Option<i64>,
}

impl Env {
    /// Inputs at `now_ms` with `new_run_id` for a run the request may create, under the
    /// default limits.
    pub fn new(now_ms: i64, new_run_id: impl Into<String>) -> Self {
        Self {
            now_ms,
            new_run_id: new_run_id.into(),
            limits: crate::Limits::default(),
            search_attributes: None,
            retention_ms: None,
        }
    }
}

/// What one request changed: to persist atomically, then to act on.
#[derive(Debug, Default)]
pub struct Changes {
    /// New history events, with their ids, in order.
    pub events: Vec<HistoryEvent>,
    /// New transfer tasks (`fire_time_ms == 0`) and timer tasks.
    pub tasks: Vec<TaskInfo>,
    /// A run this request created (continue-as-new), with its own changes.
    pub new_run: Option<Box<Workflow>>,
}

/// A run and its pending changes.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The mutable state after the changes.
    pub state: MutableState,
    pub(crate) events: Vec<HistoryEvent>,
    pub(crate) tasks: Vec<TaskInfo>,
    pub(crate) new_run: Option<Box<Workflow>>,
    /// True while a completion's commands are applied: events that would wait for a running
    /// workflow task wait until the commands are done too (and are dropped if they close the
    /// run).
    pub(crate) applying_commands: bool,
    /// Workflow updates in flight that are not in history yet (memory only).
    pub(crate) updates: crate::update::UpdateRegistry,
    /// The run lists differently for a change no event records (its `BuildIds`).
    pub(crate) visibility_changed: bool,
}

/// Most events the buffer holds before the running workflow task is force-failed
/// (`history.maximumBufferedEventsBatch`).
pub const MAX_BUFFERED_EVENTS: usize = 100;

/// What a new run starts with.
#[derive(Debug, Clone, Default)]
pub struct StartParams {
    /// Namespace id.
    pub namespace_id: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Run id.
    pub run_id: String,
    /// Request id of the start.
    pub request_id: String,
    /// Started-event attributes as requested; the engine fills defaults and ids.
    pub attributes: WorkflowExecutionStartedEventAttributes,
    /// A signal to deliver with the start (signal-with-start).
    pub signal: Option<Signal>,
    /// Name of the namespace.
    pub namespace_name: String,
    /// A child run: its first workflow task waits until the parent has recorded the start.
    pub defer_first_workflow_task: bool,
}

/// A signal to deliver.
#[derive(Debug, Clone, Default)]
pub struct Signal {
    /// Signal name.
    pub name: String,
    /// Its input.
    pub input: Option<Payloads>,
    /// Header.
    pub header: Option<Header>,
    /// Sender identity.
    pub identity: String,
    /// Request id, for dedupe ("" for none).
    pub request_id: String,
    /// Deliver without scheduling a workflow task.
    pub skip_generate_workflow_task: bool,
    /// The workflow that sent it, for SignalExternalWorkflowExecution.
    pub external_workflow_execution:
        Option<temporalio_protos::temporal::api::common::v1::WorkflowExecution>,
}

impl Workflow {
    /// Whether the run lists differently since this was last asked for a change no event
    /// records (the `BuildIds` a workflow-task completion adds).
    pub fn take_visibility_change(&mut self) -> bool {
        std::mem::take(&mut self.visibility_changed)
    }

    /// Wraps a loaded state.
    pub fn from_state(state: MutableState) -> Self {
        Self {
            state,
            events: Vec::new(),
            tasks: Vec::new(),
            new_run: None,
            applying_commands: false,
            visibility_changed: false,
            updates: Default::default(),
        }
    }

    /// Starts a new run: WorkflowExecutionStarted, an optional signal, the first workflow task
    /// (or its backoff timer) and the run/execution timeout timers.
    pub fn start(params: StartParams, env: &Env) -> Result<Self> {
        let mut attrs = params.attributes;
        let run_timeout = duration_ms(attrs.workflow_run_timeout.as_ref());
        let execution_timeout = duration_ms(attrs.workflow_execution_timeout.as_ref());
        if run_timeout < 0 || execution_timeout < 0 {
            return Err(Error::InvalidArgument("Invalid WorkflowRunTimeout.".into()));
        }
        let run_timeout = match (run_timeout, execution_timeout) {
            (0, e) => e,
            (r, 0) => r,
            (r, e) => r.min(e),
        };
        // An explicit zero stays written as 0s (a continued run's), an absent one stays absent.
        attrs.workflow_run_timeout = if run_timeout > 0 {
            Some(duration(run_timeout))
        } else {
            attrs.workflow_run_timeout.map(|_| duration(0))
        };
        let mut task_timeout = duration_ms(attrs.workflow_task_timeout.as_ref());
        if task_timeout <= 0 {
            task_timeout = DEFAULT_WORKFLOW_TASK_TIMEOUT_MS;
        }
        task_timeout = task_timeout.min(MAX_WORKFLOW_TASK_TIMEOUT_MS);
        if run_timeout > 0 {
            task_timeout = task_timeout.min(run_timeout);
        }
        attrs.workflow_task_timeout = Some(duration(task_timeout));
        if attrs.original_execution_run_id.is_empty() {
            attrs.original_execution_run_id = params.run_id.clone();
        }
        if attrs.first_execution_run_id.is_empty() {
            attrs.first_execution_run_id = params.run_id.clone();
        }
        if attrs.attempt == 0 {
            attrs.attempt = 1;
        }
        if execution_timeout > 0 && attrs.workflow_execution_expiration_time.is_none() {
            attrs.workflow_execution_expiration_time =
                Some(timestamp(env.now_ms.saturating_add(execution_timeout)));
        }
        attrs.workflow_id = params.workflow_id.clone();
        if !attrs.cron_schedule.is_empty()
            && attrs.initiator == 0
            && attrs.first_workflow_task_backoff.is_none()
        {
            // The first run of a cron workflow waits for the schedule's first fire.
            let backoff = crate::workflow_retry::cron_backoff_ms(&attrs.cron_schedule, env.now_ms)?;
            attrs.first_workflow_task_backoff = Some(duration(backoff));
            attrs.initiator = ContinueAsNewInitiator::CronSchedule as i32;
        }
        let backoff = duration_ms(attrs.first_workflow_task_backoff.as_ref());
        // Temporal writes the backoff on every run, 0s when there is none.
        attrs.first_workflow_task_backoff = Some(duration(backoff.max(0)));
        let state = MutableState {
            namespace_id: params.namespace_id,
            workflow_id: params.workflow_id,
            run_id: params.run_id,
            started: Some(attrs.clone()),
            status: WorkflowExecutionStatus::Running as i32,
            next_event_id: 1,
            start_time_ms: env.now_ms,
            execution_time_ms: env.now_ms.saturating_add(backoff.max(0)),
            start_request_id: params.request_id,
            workflow_task_attempt: 1,
            namespace_name: params.namespace_name,
            first_workflow_task_deferred: params.defer_first_workflow_task,
            // A continued run keeps the chain's reset points; its builds add only new ones.
            auto_reset_points: attrs
                .prev_auto_reset_points
                .as_ref()
                .map(|p| p.points.clone())
                .unwrap_or_default(),
            ..Default::default()
        };
        let mut wf = Self::from_state(state);
        wf.append(
            env.now_ms,
            Attributes::WorkflowExecutionStartedEventAttributes(attrs),
        );
        if let Some(signal) = params.signal {
            wf.signal(signal, env)?;
        }
        if !wf.state.first_workflow_task_deferred {
            wf.schedule_first_workflow_task(env);
        }
        if run_timeout > 0 {
            wf.push_timer(
                TaskKind::WorkflowRunTimeout,
                env.now_ms.saturating_add(run_timeout),
                |_| {},
            );
        }
        Ok(wf)
    }

    /// Schedules the first workflow task, or its backoff timer. A deferred child run calls this
    /// once its parent has recorded the start; a second call does nothing.
    pub fn schedule_first_workflow_task(&mut self, env: &Env) {
        self.state.first_workflow_task_deferred = false;
        if self.state.next_event_id > 2 || self.state.workflow_task.is_some() || !self.is_open() {
            return;
        }
        let backoff = duration_ms(
            self.started_attributes()
                .first_workflow_task_backoff
                .as_ref(),
        );
        if backoff > 0 {
            self.push_timer(
                TaskKind::WorkflowBackoff,
                self.state.start_time_ms.saturating_add(backoff),
                |_| {},
            );
        } else {
            self.schedule_workflow_task(env);
        }
    }

    /// Takes the changes recorded so far, leaving none. Events still buffered stay buffered.
    pub fn take_changes(&mut self) -> Changes {
        Changes {
            events: mem::take(&mut self.events),
            tasks: mem::take(&mut self.tasks),
            new_run: self.new_run.take(),
        }
    }

    /// True while the run is open.
    pub fn is_open(&self) -> bool {
        self.state.status == WorkflowExecutionStatus::Running as i32
    }

    pub(crate) fn ensure_open(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(Error::WorkflowCompleted)
        }
    }

    /// The started-event attributes of the run.
    pub fn started_attributes(&self) -> &WorkflowExecutionStartedEventAttributes {
        static EMPTY: std::sync::OnceLock<WorkflowExecutionStartedEventAttributes> =
            std::sync::OnceLock::new();
        self.state
            .started
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(Default::default))
    }

    /// The run's normal task queue.
    pub fn task_queue(&self) -> &str {
        self.started_attributes()
            .task_queue
            .as_ref()
            .map_or("", |q| q.name.as_str())
    }

    pub(crate) fn workflow_task_started(&self) -> bool {
        self.state
            .workflow_task
            .as_ref()
            .is_some_and(|t| t.started_event_id != 0)
    }

    /// Appends an event: buffered (placeholder id) when a workflow task is started and the
    /// event type waits, otherwise with the next id; either way the event applier
    /// (`apply.rs`) records what it means for the state. Returns the id given.
    pub(crate) fn append(&mut self, now_ms: i64, attributes: Attributes) -> i64 {
        let event_type = event_type_of(&attributes);
        // Anything written makes a speculative workflow task a real one (speculative.rs).
        self.before_append(event_type);
        let mut event = HistoryEvent {
            event_time: Some(timestamp(now_ms)),
            event_type: event_type as i32,
            attributes: Some(attributes),
            ..Default::default()
        };
        if (self.workflow_task_started() || self.applying_commands) && is_bufferable(event_type) {
            event.event_id = BUFFERED_EVENT_ID;
            // What the event means for the run holds from now, though its id comes later.
            self.state.apply_run_event(&event);
            self.state.buffered_events.push(event);
            if self.state.buffered_events.len() > MAX_BUFFERED_EVENTS
                && self.workflow_task_started()
            {
                // Too much arrived while the task ran: fail it and hand everything to a new
                // one (Temporal's closeTransactionHandleBufferedEventsLimit).
                let env = Env::new(now_ms, "");
                self.force_close_started_workflow_task(&env);
                self.schedule_workflow_task(&env);
            }
            return BUFFERED_EVENT_ID;
        }
        let id = self.push_event(event);
        if let Some(event) = self.events.last() {
            self.state.apply_run_event(event);
        }
        id
    }

    fn push_event(&mut self, mut event: HistoryEvent) -> i64 {
        event.event_id = self.state.next_event_id;
        self.state.next_event_id += 1;
        self.state.history_size_bytes += prost::Message::encoded_len(&event) as i64;
        let id = event.event_id;
        self.events.push(event);
        id
    }

    /// Moves the buffer into history: reordered, given ids, and with activity and child closing
    /// events pointing at their (now numbered) started events.
    pub(crate) fn flush_buffered(&mut self) {
        let buffered = mem::take(&mut self.state.buffered_events);
        let mut started_ids = std::collections::BTreeMap::new();
        for mut event in reorder_buffer(buffered) {
            let next = self.state.next_event_id;
            match event.attributes.as_mut() {
                Some(Attributes::ActivityTaskStartedEventAttributes(a)) => {
                    started_ids.insert(a.scheduled_event_id, next);
                }
                Some(Attributes::ChildWorkflowExecutionStartedEventAttributes(a)) => {
                    started_ids.insert(a.initiated_event_id, next);
                    if let Some(child) = self.state.children.get_mut(&a.initiated_event_id) {
                        child.started_event_id = next;
                    }
                }
                Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => {
                    fix_started(&mut a.started_event_id, a.scheduled_event_id, &started_ids)
                }
                Some(Attributes::ActivityTaskFailedEventAttributes(a)) => {
                    fix_started(&mut a.started_event_id, a.scheduled_event_id, &started_ids)
                }
                Some(Attributes::ActivityTaskTimedOutEventAttributes(a)) => {
                    fix_started(&mut a.started_event_id, a.scheduled_event_id, &started_ids)
                }
                Some(Attributes::ActivityTaskCanceledEventAttributes(a)) => {
                    fix_started(&mut a.started_event_id, a.scheduled_event_id, &started_ids)
                }
                Some(other) => {
                    if let Some((initiated, started)) = child_close_started_id_mut(other) {
                        fix_started(started, initiated, &started_ids)
                    }
                }
                None => {}
            }
            self.push_event(event);
        }
    }

    /// Records a task to run after the commit.
    pub(crate) fn push_transfer(&mut self, kind: TaskKind, fill: impl FnOnce(&mut TaskInfo)) {
        let mut task = self.task_base(kind);
        fill(&mut task);
        self.tasks.push(task);
    }

    /// Records a timer task firing at `fire_time_ms`.
    pub(crate) fn push_timer(
        &mut self,
        kind: TaskKind,
        fire_time_ms: i64,
        fill: impl FnOnce(&mut TaskInfo),
    ) {
        let mut task = self.task_base(kind);
        task.fire_time_ms = fire_time_ms.max(1);
        fill(&mut task);
        self.tasks.push(task);
    }

    fn task_base(&self, kind: TaskKind) -> TaskInfo {
        TaskInfo {
            kind: kind as i32,
            namespace_id: self.state.namespace_id.clone(),
            workflow_id: self.state.workflow_id.clone(),
            run_id: self.state.run_id.clone(),
            ..Default::default()
        }
    }

    /// Delivers a signal; schedules a workflow task unless one is pending or the sender asked
    /// not to.
    pub fn signal(&mut self, signal: Signal, env: &Env) -> Result<()> {
        self.ensure_open()?;
        if !signal.request_id.is_empty()
            && self.state.signal_request_ids.contains(&signal.request_id)
        {
            return Ok(());
        }
        if self.state.signal_count >= env.limits.signals_per_execution {
            return Err(Error::LimitExceeded(
                "exceeded workflow execution limit for signal events".into(),
            ));
        }
        // The event applier counts the signal and remembers its request id.
        self.append(
            env.now_ms,
            Attributes::WorkflowExecutionSignaledEventAttributes(
                WorkflowExecutionSignaledEventAttributes {
                    signal_name: signal.name,
                    input: signal.input,
                    identity: signal.identity,
                    header: signal.header,
                    skip_generate_workflow_task: signal.skip_generate_workflow_task,
                    request_id: signal.request_id,
                    external_workflow_execution: signal.external_workflow_execution,
                },
            ),
        );
        if !signal.skip_generate_workflow_task {
            self.schedule_workflow_task(env);
        }
        Ok(())
    }

    /// Records a cancellation request; the workflow decides what to do with it.
    pub fn request_cancel(&mut self, cause: String, identity: String, env: &Env) -> Result<()> {
        self.request_cancel_from(cause, identity, None, env)
    }

    /// A cancellation request, from another workflow when `external` names it (its workflow
    /// and the RequestCancelExternalWorkflowExecutionInitiated event id).
    pub fn request_cancel_from(
        &mut self,
        cause: String,
        identity: String,
        external: Option<(
            temporalio_protos::temporal::api::common::v1::WorkflowExecution,
            i64,
        )>,
        env: &Env,
    ) -> Result<()> {
        self.ensure_open()?;
        if self.state.cancel_requested {
            return Ok(());
        }
        let (external_workflow_execution, external_initiated_event_id) = match external {
            Some((execution, initiated)) => (Some(execution), initiated),
            None => (None, 0),
        };
        self.append(
            env.now_ms,
            Attributes::WorkflowExecutionCancelRequestedEventAttributes(
                WorkflowExecutionCancelRequestedEventAttributes {
                    cause,
                    identity,
                    external_initiated_event_id,
                    external_workflow_execution,
                },
            ),
        );
        self.schedule_workflow_task(env);
        Ok(())
    }

    /// Ends the run at once with WorkflowExecutionTerminated (after failing a started workflow
    /// task and flushing the buffer).
    pub fn terminate(
        &mut self,
        reason: String,
        details: Option<Payloads>,
        identity: String,
        env: &Env,
    ) -> Result<()> {
        self.ensure_open()?;
        self.force_close_started_workflow_task(env);
        self.flush_buffered();
        self.close(
            env,
            WorkflowExecutionStatus::Terminated,
            Attributes::WorkflowExecutionTerminatedEventAttributes(
                WorkflowExecutionTerminatedEventAttributes {
                    reason,
                    details,
                    identity,
                },
            ),
        );
        Ok(())
    }

    /// The run or execution timeout fired: WorkflowExecutionTimedOut (after failing a started
    /// workflow task and flushing the buffer).
    pub fn time_out(&mut self, env: &Env) -> Result<()> {
        self.ensure_open()?;
        self.force_close_started_workflow_task(env);
        self.flush_buffered();
        // Without a retry policy Temporal reports that, not the timeout, as the retry state.
        let failure = Failure {
            message: "Workflow timed out".into(),
            source: "Server".into(),
            failure_info: Some(FailureInfo::TimeoutFailureInfo(TimeoutFailureInfo {
                timeout_type: TimeoutType::StartToClose as i32,
                last_heartbeat_details: None,
            })),
            ..Default::default()
        };
        // Past the execution timeout nothing follows the run (Temporal: retry state TIMEOUT).
        let expired = self
            .started_attributes()
            .workflow_execution_expiration_time
            .as_ref()
            .is_some_and(|t| crate::time::timestamp_ms(t) <= env.now_ms);
        let (retry_state, new_execution_run_id) = if expired {
            (RetryState::Timeout, String::new())
        } else {
            let (retry_state, mut new_run) = self.retry_if_allowed(Some(&failure), env)?;
            if new_run.is_empty() {
                new_run = self.continue_cron(None, Some(failure.clone()), env)?;
            }
            let retry_state = match retry_state {
                RetryState::RetryPolicyNotSet | RetryState::InProgress => retry_state,
                _ => RetryState::Timeout,
            };
            (retry_state, new_run)
        };
        self.close(
            env,
            WorkflowExecutionStatus::TimedOut,
            Attributes::WorkflowExecutionTimedOutEventAttributes(
                WorkflowExecutionTimedOutEventAttributes {
                    retry_state: retry_state as i32,
                    new_execution_run_id,
                },
            ),
        );
        Ok(())
    }

    /// Appends the close event (the event applier closes the run and drops everything
    /// pending) and acts on the parent and the children.
    pub(crate) fn close(
        &mut self,
        env: &Env,
        status: WorkflowExecutionStatus,
        attributes: Attributes,
    ) {
        let children: Vec<_> = self.state.children.values().cloned().collect();
        let id = self.append(env.now_ms, attributes);
        debug_assert_eq!(
            self.state.status, status as i32,
            "the close event sets the status"
        );
        let continues = status == WorkflowExecutionStatus::ContinuedAsNew || self.new_run.is_some();
        self.on_close(id, continues, children);
        self.state.buffered_events.clear();
    }

    /// The first-workflow-task backoff ended.
    pub fn backoff_elapsed(&mut self, env: &Env) -> Result<()> {
        self.ensure_open()?;
        self.schedule_workflow_task(env);
        Ok(())
    }

    /// Creates the next run of a continue-as-new and closes this one.
    pub(crate) fn continue_as_new(
        &mut self,
        mut attrs: temporalio_protos::temporal::api::command::v1::ContinueAsNewWorkflowExecutionCommandAttributes,
        completed_event_id: i64,
        env: &Env,
    ) -> Result<()> {
        let current = self.started_attributes().clone();
        if attrs
            .workflow_type
            .as_ref()
            .is_none_or(|t| t.name.is_empty())
        {
            attrs.workflow_type = current.workflow_type.clone();
        }
        if attrs.task_queue.as_ref().is_none_or(|q| q.name.is_empty()) {
            attrs.task_queue = current.task_queue.clone();
        }
        let context = format!(
            "WorkflowType={} TaskQueue={}",
            attrs.workflow_type.as_ref().map_or("", |t| t.name.as_str()),
            attrs.task_queue.as_ref().map_or("", |q| q.name.as_str()),
        );
        crate::commands::check_run_durations(
            "ContinueAsNewWorkflowExecutionCommand",
            &context,
            [
                ("WorkflowRunTimeout", &mut attrs.workflow_run_timeout),
                ("WorkflowTaskTimeout", &mut attrs.workflow_task_timeout),
                ("BackoffStartInterval", &mut attrs.backoff_start_interval),
            ],
            attrs.retry_policy.as_mut(),
        )
        .map_err(Error::InvalidArgument)?;
        if attrs.workflow_run_timeout.is_none() {
            attrs.workflow_run_timeout = current.workflow_run_timeout.or(Some(duration(0)));
        }
        if attrs.workflow_task_timeout.is_none() {
            attrs.workflow_task_timeout = current.workflow_task_timeout;
        }
        let initiator = match attrs.initiator {
            0 => ContinueAsNewInitiator::Workflow as i32,
            i => i,
        };
        let backoff =
            self.continue_as_new_backoff(duration_ms(attrs.backoff_start_interval.as_ref()), env);
        let new_run_id = env.new_run_id.clone();
        let next = StartParams {
            namespace_id: self.state.namespace_id.clone(),
            workflow_id: self.state.workflow_id.clone(),
            run_id: new_run_id.clone(),
            request_id: String::new(),
            attributes: WorkflowExecutionStartedEventAttributes {
                workflow_type: attrs.workflow_type.clone(),
                task_queue: attrs.task_queue.clone(),
                input: attrs.input.clone(),
                workflow_execution_timeout: current.workflow_execution_timeout,
                workflow_run_timeout: attrs.workflow_run_timeout,
                workflow_task_timeout: attrs.workflow_task_timeout,
                continued_execution_run_id: self.state.run_id.clone(),
                initiator,
                continued_failure: attrs.failure.clone(),
                last_completion_result: attrs.last_completion_result.clone(),
                first_execution_run_id: current.first_execution_run_id.clone(),
                retry_policy: attrs.retry_policy.clone().or(current.retry_policy.clone()),
                attempt: 1,
                workflow_execution_expiration_time: current.workflow_execution_expiration_time,
                cron_schedule: attrs.cron_schedule.clone(),
                first_workflow_task_backoff: Some(duration(backoff)),
                prev_auto_reset_points: self.rolled_over_reset_points(env),
                priority: current.priority.clone().or(Some(Default::default())),
                memo: attrs.memo.clone().or(current.memo.clone()),
                search_attributes: attrs.search_attributes.clone().or(
                    crate::search_attributes::without_build_ids(current.search_attributes.clone()),
                ),
                header: attrs.header.clone(),
                parent_workflow_namespace: current.parent_workflow_namespace.clone(),
                parent_workflow_namespace_id: current.parent_workflow_namespace_id.clone(),
                parent_workflow_execution: current.parent_workflow_execution.clone(),
                parent_initiated_event_id: current.parent_initiated_event_id,
                root_workflow_execution: current.root_workflow_execution.clone(),
                ..Default::default()
            },
            signal: None,
            namespace_name: self.state.namespace_name.clone(),
            defer_first_workflow_task: false,
        };
        let started_env = Env {
            new_run_id: String::new(),
            ..env.clone()
        };
        let new_run = Workflow::start(next, &started_env)?;
        self.close(
            env,
            WorkflowExecutionStatus::ContinuedAsNew,
            Attributes::WorkflowExecutionContinuedAsNewEventAttributes(
                temporalio_protos::temporal::api::history::v1::WorkflowExecutionContinuedAsNewEventAttributes {
                    new_execution_run_id: new_run_id.clone(),
                    workflow_type: attrs.workflow_type,
                    task_queue: attrs.task_queue,
                    input: attrs.input,
                    workflow_run_timeout: attrs.workflow_run_timeout,
                    workflow_task_timeout: attrs.workflow_task_timeout,
                    workflow_task_completed_event_id: completed_event_id,
                    backoff_start_interval: attrs.backoff_start_interval,
                    // The command's own initiator (unset for a workflow's continue-as-new).
                    initiator: attrs.initiator,
                    failure: attrs.failure,
                    inherit_build_id: attrs.inherit_build_id,
                    last_completion_result: attrs.last_completion_result,
                    header: attrs.header,
                    memo: attrs.memo,
                    search_attributes: attrs.search_attributes,
                    ..Default::default()
                },
            ),
        );
        self.state.new_execution_run_id = new_run_id;
        self.new_run = Some(Box::new(new_run));
        Ok(())
    }

    /// Number of the event types appended so far in this request (for tests).
    pub fn pending_event_types(&self) -> Vec<EventType> {
        self.events
            .iter()
            .map(|e| EventType::try_from(e.event_type).unwrap_or_default())
            .collect()
    }
}

fn fix_started(
    started_event_id: &mut i64,
    scheduled_event_id: i64,
    started_ids: &std::collections::BTreeMap<i64, i64>,
) {
    if *started_event_id == BUFFERED_EVENT_ID
        && let Some(id) = started_ids.get(&scheduled_event_id)
    {
        *started_event_id = *id;
    }
}
