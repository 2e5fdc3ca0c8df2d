//! Workflow-task transitions: scheduled → started → completed / failed / timed out, with
//! transient attempts (reference §2.3) and sticky queues.

use temporalio_protos::temporal::api::{
    enums::v1::{SuggestContinueAsNewReason, TaskQueueKind, TimeoutType, WorkflowTaskFailedCause},
    failure::v1::Failure,
    history::v1::{
        HistoryEvent, WorkflowTaskFailedEventAttributes, WorkflowTaskScheduledEventAttributes,
        WorkflowTaskStartedEventAttributes, WorkflowTaskTimedOutEventAttributes,
        history_event::Attributes,
    },
    taskqueue::v1::TaskQueue,
};

use crate::events::{TRANSIENT_EVENT_ID, event_type_of};
use crate::state::{TaskInfo, TaskKind, WorkflowTaskInfo};
use crate::time::{duration, duration_ms, timestamp};
use crate::workflow::{DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, Env, Workflow};
use crate::{Error, Result};

/// Identity the server writes on events it decides itself (Temporal's
/// `consts.IdentityHistoryService`).
pub const HISTORY_SERVICE_IDENTITY: &str = "history-service";

/// What the poller gets when a workflow task starts.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowTaskStart {
    /// Scheduled event id.
    pub scheduled_event_id: i64,
    /// Started event id.
    pub started_event_id: i64,
    /// Attempt.
    pub attempt: i32,
    /// Started id of the last completed workflow task.
    pub previous_started_event_id: i64,
    /// Scheduled time, unix millis.
    pub scheduled_time_ms: i64,
    /// Started time, unix millis.
    pub started_time_ms: i64,
    /// Events of a transient task that are not stored: append them to the history sent.
    pub transient_events: Vec<HistoryEvent>,
    /// Stored events run up to (excluding) this id.
    pub next_event_id: i64,
    /// Workflow-update requests delivered with the task (protocol messages).
    pub messages: Vec<temporalio_protos::temporal::api::protocol::v1::Message>,
}

impl Workflow {
    fn task_queue_message(&self, name: &str, sticky: bool) -> TaskQueue {
        TaskQueue {
            name: name.to_string(),
            kind: if sticky {
                TaskQueueKind::Sticky as i32
            } else {
                TaskQueueKind::Normal as i32
            },
            normal_name: if sticky {
                self.task_queue().to_string()
            } else {
                String::new()
            },
        }
    }

    fn workflow_task_timeout_ms(&self) -> i64 {
        match duration_ms(self.started_attributes().workflow_task_timeout.as_ref()) {
            0 => DEFAULT_WORKFLOW_TASK_TIMEOUT_MS,
            ms => ms,
        }
    }

    /// Eager workflow start: the first workflow task starts at once for the starter's own
    /// worker instead of going through matching. `None` when the first task is not scheduled
    /// yet (a start delay or cron backoff).
    pub fn start_first_workflow_task_eagerly(
        &mut self,
        request_id: &str,
        identity: &str,
        env: &Env,
    ) -> Option<WorkflowTaskStart> {
        let task = self.state.workflow_task.clone()?;
        if task.started_event_id != 0 || self.state.next_event_id > 3 {
            return None;
        }
        self.tasks.retain(|t| {
            !(t.task_kind() == TaskKind::DispatchWorkflowTask
                && t.scheduled_event_id == task.scheduled_event_id)
        });
        if let Some(started) = self.state.started.as_mut() {
            started.eager_execution_accepted = true;
        }
        for event in self.events.iter_mut() {
            if let Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) =
                event.attributes.as_mut()
            {
                a.eager_execution_accepted = true;
            }
        }
        let queue = task.task_queue.clone();
        self.record_workflow_task_started(
            task.scheduled_event_id,
            task.attempt,
            request_id,
            identity,
            "",
            &queue,
            env,
        )
        .ok()
    }

    /// ResetStickyTaskQueue: later workflow tasks go to the normal queue (with full history).
    pub fn reset_sticky_task_queue(&mut self) {
        self.state.sticky_task_queue.clear();
        self.state.sticky_schedule_to_start_ms = 0;
    }

    /// Schedules a workflow task unless one is pending: flushes the buffer first (which makes
    /// the task a normal one), and dispatches to the sticky queue when the run is sticky.
    pub fn schedule_workflow_task(&mut self, env: &Env) {
        if self.state.workflow_task.is_some() || !self.is_open() {
            return;
        }
        if !self.state.buffered_events.is_empty() {
            self.state.workflow_task_attempt = 1;
            self.flush_buffered();
        }
        let attempt = self.state.workflow_task_attempt.max(1);
        let sticky = !self.state.sticky_task_queue.is_empty();
        let queue = if sticky {
            self.state.sticky_task_queue.clone()
        } else {
            self.task_queue().to_string()
        };
        let timeout_ms = self.workflow_task_timeout_ms();
        let transient = attempt > 1;
        let scheduled_event_id = if transient {
            self.state.next_event_id
        } else {
            let task_queue = self.task_queue_message(&queue, sticky);
            self.append(
                env.now_ms,
                Attributes::WorkflowTaskScheduledEventAttributes(
                    WorkflowTaskScheduledEventAttributes {
                        task_queue: Some(task_queue),
                        start_to_close_timeout: Some(duration(timeout_ms)),
                        attempt,
                    },
                ),
            )
        };
        self.state.workflow_task = Some(WorkflowTaskInfo {
            scheduled_event_id,
            attempt,
            task_queue: queue.clone(),
            sticky,
            timeout_ms,
            scheduled_time_ms: env.now_ms,
            transient,
            ..Default::default()
        });
        let normal = self.task_queue().to_string();
        let sticky_timeout = self.state.sticky_schedule_to_start_ms;
        self.push_transfer(TaskKind::DispatchWorkflowTask, |t| {
            t.scheduled_event_id = scheduled_event_id;
            t.attempt = attempt;
            t.task_queue = queue;
            t.sticky = sticky;
            t.normal_task_queue = normal;
            t.schedule_to_start_ms = if sticky { sticky_timeout } else { 0 };
        });
        if sticky && sticky_timeout > 0 {
            self.push_timer(
                TaskKind::WorkflowTaskTimeout,
                env.now_ms.saturating_add(sticky_timeout),
                |t| {
                    t.scheduled_event_id = scheduled_event_id;
                    t.attempt = attempt;
                    t.timeout_type = TimeoutType::ScheduleToStart as i32;
                },
            );
        }
    }

    /// Refuses a completion or failure whose task token names an earlier start of the pending
    /// task (same scheduled id and attempt, another started event or start time: a speculative
    /// task dropped and made again, or a task that timed out and was started again), as
    /// Temporal does. Zero in the token means "not recorded" and matches anything.
    pub fn check_workflow_task_start(
        &self,
        started_event_id: i64,
        started_time_ms: i64,
    ) -> Result<()> {
        let Some(task) = self.state.workflow_task.as_ref() else {
            return Ok(());
        };
        let other_event = started_event_id != 0 && started_event_id != task.started_event_id;
        let other_time = started_time_ms != 0
            && task.started_time_ms != 0
            && started_time_ms != task.started_time_ms;
        if task.started_event_id != 0 && (other_event || other_time) {
            return Err(Error::NotFound("Workflow task not found.".into()));
        }
        Ok(())
    }

    /// The pending workflow task, if `scheduled_event_id` and `attempt` name it.
    fn matching_workflow_task(
        &self,
        scheduled_event_id: i64,
        attempt: i32,
    ) -> Option<&WorkflowTaskInfo> {
        self.state
            .workflow_task
            .as_ref()
            .filter(|t| t.scheduled_event_id == scheduled_event_id && t.attempt == attempt)
    }

    /// Hands the pending workflow task to a poller of `polled_queue`. Idempotent for the same
    /// poll request id; a task already started by another poll is [`Error::TaskAlreadyStarted`].
    // The poll's facts, one argument each, as the RPC gives them.
    #[allow(clippy::too_many_arguments)]
    pub fn record_workflow_task_started(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        request_id: &str,
        identity: &str,
        build_id: &str,
        polled_queue: &str,
        env: &Env,
    ) -> Result<WorkflowTaskStart> {
        self.ensure_open()?;
        let Some(task) = self
            .matching_workflow_task(scheduled_event_id, attempt)
            .cloned()
        else {
            return Err(Error::NotFound("Workflow task not found.".into()));
        };
        if task.started_event_id != 0 {
            if task.request_id == request_id {
                let start = self.workflow_task_start(&task);
                return Ok(self.deliver_updates(start));
            }
            return Err(Error::TaskAlreadyStarted);
        }
        if !self.state.sticky_task_queue.is_empty() && polled_queue != self.state.sticky_task_queue
        {
            // A normal-queue poller took the task the sticky worker did not: stickiness ends.
            self.state.sticky_task_queue.clear();
        }
        let mut task = task;
        if task.transient && task.scheduled_event_id != self.state.next_event_id {
            // Events arrived after the failed attempt: this attempt is no longer transient,
            // and becomes a normal task with attempt 1 (as Temporal's
            // AddWorkflowTaskStartedEvent does).
            task.transient = false;
            task.attempt = 1;
            self.state.workflow_task_attempt = 1;
            let queue = self.task_queue_message(&task.task_queue, task.sticky);
            task.scheduled_event_id = self.append(
                env.now_ms,
                Attributes::WorkflowTaskScheduledEventAttributes(
                    WorkflowTaskScheduledEventAttributes {
                        task_queue: Some(queue),
                        start_to_close_timeout: Some(duration(task.timeout_ms)),
                        attempt: task.attempt,
                    },
                ),
            );
        }
        task.started_time_ms = env.now_ms;
        task.suggest_continue_as_new_reasons = self.suggest_continue_as_new(env);
        task.request_id = request_id.to_string();
        task.identity = identity.to_string();
        task.worker_build_id = build_id.to_string();
        task.started_event_id = if task.transient || task.speculative {
            task.scheduled_event_id + 1
        } else {
            let attrs = self.started_event_attributes(&task);
            self.append(
                env.now_ms,
                Attributes::WorkflowTaskStartedEventAttributes(attrs),
            )
        };
        let (scheduled, timeout, attempt) =
            (task.scheduled_event_id, task.timeout_ms, task.attempt);
        let speculative = task.speculative;
        self.state.workflow_task = Some(task.clone());
        self.push_timer(
            TaskKind::WorkflowTaskTimeout,
            env.now_ms.saturating_add(timeout),
            |t| {
                t.scheduled_event_id = scheduled;
                t.attempt = attempt;
                t.timeout_type = TimeoutType::StartToClose as i32;
                // A speculative task's timeout lives in memory only (speculative.rs).
                t.speculative = speculative;
                t.workflow_task_time_ms = if speculative { env.now_ms } else { 0 };
            },
        );
        let start = self.workflow_task_start(&task);
        Ok(self.deliver_updates(start))
    }

    fn started_event_attributes(
        &self,
        task: &WorkflowTaskInfo,
    ) -> WorkflowTaskStartedEventAttributes {
        WorkflowTaskStartedEventAttributes {
            scheduled_event_id: task.scheduled_event_id,
            identity: task.identity.clone(),
            request_id: task.request_id.clone(),
            history_size_bytes: self.state.history_size_bytes,
            suggest_continue_as_new: !task.suggest_continue_as_new_reasons.is_empty(),
            suggest_continue_as_new_reasons: task.suggest_continue_as_new_reasons.clone(),
            worker_version: crate::events::worker_stamp(&task.worker_build_id),
            ..Default::default()
        }
    }

    /// Why the worker should continue as new, per the history's size and length (the length
    /// counts the started event being written).
    fn suggest_continue_as_new(&self, env: &Env) -> Vec<i32> {
        let mut reasons = Vec::new();
        if self.state.history_size_bytes >= env.limits.history_size_suggest_continue_as_new {
            reasons.push(SuggestContinueAsNewReason::HistorySizeTooLarge as i32);
        }
        if self.state.next_event_id >= env.limits.history_count_suggest_continue_as_new {
            reasons.push(SuggestContinueAsNewReason::TooManyHistoryEvents as i32);
        }
        reasons
    }

    fn workflow_task_start(&self, task: &WorkflowTaskInfo) -> WorkflowTaskStart {
        WorkflowTaskStart {
            scheduled_event_id: task.scheduled_event_id,
            started_event_id: task.started_event_id,
            attempt: task.attempt,
            previous_started_event_id: self.state.last_completed_wft_started_event_id,
            scheduled_time_ms: task.scheduled_time_ms,
            started_time_ms: task.started_time_ms,
            transient_events: if task.transient || task.speculative {
                self.transient_events(task)
            } else {
                Vec::new()
            },
            next_event_id: self.state.next_event_id,
            messages: Vec::new(),
        }
    }

    /// The Scheduled/Started pair of a transient task, with their would-be ids.
    pub(crate) fn transient_events(&self, task: &WorkflowTaskInfo) -> Vec<HistoryEvent> {
        let scheduled = Attributes::WorkflowTaskScheduledEventAttributes(
            WorkflowTaskScheduledEventAttributes {
                task_queue: Some(self.task_queue_message(&task.task_queue, task.sticky)),
                start_to_close_timeout: Some(duration(task.timeout_ms)),
                attempt: task.attempt,
            },
        );
        let started =
            Attributes::WorkflowTaskStartedEventAttributes(self.started_event_attributes(task));
        [
            (task.scheduled_event_id, task.scheduled_time_ms, scheduled),
            (task.started_event_id, task.started_time_ms, started),
        ]
        .into_iter()
        .map(|(id, time, attributes)| HistoryEvent {
            event_id: id,
            event_time: Some(timestamp(time)),
            event_type: event_type_of(&attributes) as i32,
            attributes: Some(attributes),
            ..Default::default()
        })
        .collect()
    }

    /// Checks that a completion or failure names the started task; returns it.
    pub(crate) fn started_workflow_task(
        &self,
        scheduled_event_id: i64,
        attempt: i32,
    ) -> Result<WorkflowTaskInfo> {
        self.ensure_open()
            .map_err(|_| Error::NotFound("Workflow task not found.".into()))?;
        match self.matching_workflow_task(scheduled_event_id, attempt) {
            Some(t) if t.started_event_id != 0 => Ok(t.clone()),
            _ => Err(Error::NotFound("Workflow task not found.".into())),
        }
    }

    /// Stores the events of a transient task that is about to be closed by a completion.
    pub(crate) fn persist_transient(&mut self, task: &WorkflowTaskInfo) {
        self.persist_speculative_workflow_task();
        if !task.transient {
            return;
        }
        for event in self.transient_events(task) {
            let attributes = event.attributes.expect("transient events carry attributes");
            let time = event
                .event_time
                .as_ref()
                .map_or(0, crate::time::timestamp_ms);
            let id = self.append(time, attributes);
            debug_assert_ne!(id, TRANSIENT_EVENT_ID);
        }
    }

    /// The worker reported that it could not process the task.
    pub fn fail_workflow_task(
        &mut self,
        scheduled_event_id: i64,
        attempt: i32,
        cause: WorkflowTaskFailedCause,
        failure: Option<Failure>,
        identity: String,
        env: &Env,
    ) -> Result<()> {
        let task = self.started_workflow_task(scheduled_event_id, attempt)?;
        self.record_workflow_task_failure(&task, cause, failure, identity, env);
        Ok(())
    }

    /// WorkflowTaskFailed (unless transient), next attempt, stickiness cleared.
    pub(crate) fn record_workflow_task_failure(
        &mut self,
        task: &WorkflowTaskInfo,
        cause: WorkflowTaskFailedCause,
        failure: Option<Failure>,
        identity: String,
        env: &Env,
    ) {
        self.append_workflow_task_failed(task, cause, failure, identity, env);
        self.state.workflow_task = None;
        self.state.workflow_task_attempt = self.next_attempt_after_failure(task);
        self.schedule_workflow_task(env);
    }

    /// Before the run is closed from outside (terminate, run timeout): a started task fails
    /// with FORCE_CLOSE_COMMAND (nothing written for a transient one), as Temporal's
    /// `TerminateWorkflow` / `TimeoutWorkflow` do, so the history does not end on a dangling
    /// WorkflowTaskStarted.
    pub(crate) fn force_close_started_workflow_task(&mut self, env: &Env) {
        let Some(task) = self
            .state
            .workflow_task
            .clone()
            .filter(|t| t.started_event_id != 0)
        else {
            return;
        };
        self.append_workflow_task_failed(
            &task,
            WorkflowTaskFailedCause::ForceCloseCommand,
            None,
            HISTORY_SERVICE_IDENTITY.to_string(),
            env,
        );
        self.state.workflow_task = None;
    }

    pub(crate) fn append_workflow_task_failed(
        &mut self,
        task: &WorkflowTaskInfo,
        cause: WorkflowTaskFailedCause,
        failure: Option<Failure>,
        identity: String,
        env: &Env,
    ) {
        self.persist_speculative_workflow_task();
        if !task.transient {
            self.append(
                env.now_ms,
                Attributes::WorkflowTaskFailedEventAttributes(WorkflowTaskFailedEventAttributes {
                    scheduled_event_id: task.scheduled_event_id,
                    started_event_id: task.started_event_id,
                    cause: cause as i32,
                    failure,
                    identity,
                    ..Default::default()
                }),
            );
        }
    }

    /// The attempt after a failed or timed-out task, clearing stickiness: a task that failed
    /// on the sticky queue gets one retry on the normal queue without a new attempt
    /// (reference §2.3), otherwise the attempt grows (and the retry is transient).
    fn next_attempt_after_failure(&mut self, task: &WorkflowTaskInfo) -> i32 {
        if self.state.sticky_task_queue.is_empty() {
            task.attempt + 1
        } else {
            self.state.sticky_task_queue.clear();
            task.attempt
        }
    }

    /// A workflow-task timeout timer fired.
    pub fn workflow_task_timed_out(&mut self, timer: &TaskInfo, env: &Env) -> Result<()> {
        self.ensure_open()?;
        let Some(task) = self
            .matching_workflow_task(timer.scheduled_event_id, timer.attempt)
            .cloned()
        else {
            return Ok(());
        };
        if !self.is_current_speculative_timer(timer, &task) {
            return Ok(());
        }
        let timeout_type = TimeoutType::try_from(timer.timeout_type).unwrap_or_default();
        match timeout_type {
            TimeoutType::StartToClose if task.started_event_id != 0 => {
                self.record_workflow_task_timeout(&task, timeout_type, env);
                self.state.workflow_task_attempt = self.next_attempt_after_failure(&task);
            }
            TimeoutType::ScheduleToStart
                if task.started_event_id == 0 && (task.sticky || task.speculative) =>
            {
                self.record_workflow_task_timeout(&task, timeout_type, env);
                self.state.workflow_task_attempt = task.attempt;
                self.state.sticky_task_queue.clear();
            }
            _ => return Ok(()),
        }
        self.schedule_workflow_task(env);
        Ok(())
    }

    fn record_workflow_task_timeout(
        &mut self,
        task: &WorkflowTaskInfo,
        timeout_type: TimeoutType,
        env: &Env,
    ) {
        self.persist_speculative_workflow_task();
        if !task.transient {
            self.append(
                env.now_ms,
                Attributes::WorkflowTaskTimedOutEventAttributes(
                    WorkflowTaskTimedOutEventAttributes {
                        scheduled_event_id: task.scheduled_event_id,
                        started_event_id: task.started_event_id,
                        timeout_type: timeout_type as i32,
                    },
                ),
            );
        }
        self.state.workflow_task = None;
    }
}
