//! Speculative workflow tasks (reference §2.3; Temporal's
//! `docs/architecture/speculative-workflow-task.md`).
//!
//! An update on an idle run is carried by a workflow task that exists only in memory: it is
//! the run's pending `workflow_task` with `speculative` set, its dispatch and timeouts are
//! memory-only tasks (`TaskInfo::speculative`), and its Scheduled/Started events travel only
//! in the poll response, like a transient task's. The store never sees it (the shard strips it,
//! see [`MutableState::without_speculative_task`]).
//!
//! It ends in one of two ways:
//! - **discarded**: the worker answered with rejections only and no commands. Nothing is
//!   written, and the worker is told to roll back to the last completed task
//!   (`reset_history_event_id`).
//! - **kept**: anything else (an acceptance, commands, a failure, a timeout, or any event
//!   written to the run meanwhile). Its Scheduled (and Started) events are written first, with
//!   the ids the worker already saw, and it goes on as a normal task.

use temporalio_protos::temporal::api::{
    enums::v1::{EventType, TimeoutType},
    workflowservice::v1::RespondWorkflowTaskCompletedRequest,
};

use crate::commands::CompletionOutcome;
use crate::state::{MutableState, TaskInfo, TaskKind, WorkflowTaskInfo};
use crate::time::{MAX_DURATION_SECONDS, duration_ms, timestamp_ms};
use crate::workflow::{DEFAULT_WORKFLOW_TASK_TIMEOUT_MS, Env, Workflow};
use crate::workflow_task::WorkflowTaskStart;

/// Schedule-to-start timeout of a speculative task on a normal queue
/// (`SpeculativeWorkflowTaskScheduleToStartTimeout`).
pub const SPECULATIVE_SCHEDULE_TO_START_MS: i64 = 5_000;
/// A speculative task that shipped more events than this is kept even if all updates were
/// rejected (`history.discardSpeculativeWorkflowTaskMaximumEventsCount`).
pub const DISCARD_SPECULATIVE_MAX_EVENTS: i64 = 10;

impl MutableState {
    /// The state as stored: a speculative workflow task is memory only.
    pub fn without_speculative_task(mut self) -> Self {
        self.strip_speculative_task();
        self
    }

    /// Drops a speculative workflow task (what the store must not see).
    pub fn strip_speculative_task(&mut self) {
        if self.workflow_task.as_ref().is_some_and(|t| t.speculative) {
            self.workflow_task = None;
        }
    }

    /// True when the pending workflow task is speculative.
    pub fn has_speculative_task(&self) -> bool {
        self.workflow_task.as_ref().is_some_and(|t| t.speculative)
    }

    /// True when `self` and `other` store the same (speculative tasks aside). Cheap when
    /// neither has a speculative task: then they are simply assumed to differ.
    pub fn stores_same_as(&self, other: &MutableState) -> bool {
        if !self.has_speculative_task() && !other.has_speculative_task() {
            return false;
        }
        self.clone().without_speculative_task() == other.clone().without_speculative_task()
    }
}

fn closes_run(event_type: EventType) -> bool {
    use EventType as E;
    matches!(
        event_type,
        E::WorkflowExecutionCompleted
            | E::WorkflowExecutionFailed
            | E::WorkflowExecutionTimedOut
            | E::WorkflowExecutionTerminated
            | E::WorkflowExecutionContinuedAsNew
            | E::WorkflowExecutionCanceled
    )
}

impl Workflow {
    /// Schedules a speculative task for updates (memory only): dispatched straight to matching,
    /// guarded by a memory-only schedule-to-start timeout.
    pub(crate) fn schedule_speculative_workflow_task(&mut self, env: &Env) {
        if self.state.workflow_task.is_some() || !self.is_open() {
            return;
        }
        let attempt = self.state.workflow_task_attempt.max(1);
        let sticky = !self.state.sticky_task_queue.is_empty();
        let queue = if sticky {
            self.state.sticky_task_queue.clone()
        } else {
            self.task_queue().to_string()
        };
        let timeout_ms = match duration_ms(self.started_attributes().workflow_task_timeout.as_ref())
        {
            0 => DEFAULT_WORKFLOW_TASK_TIMEOUT_MS,
            ms => ms,
        };
        let scheduled_event_id = self.state.next_event_id;
        self.state.workflow_task = Some(WorkflowTaskInfo {
            scheduled_event_id,
            attempt,
            task_queue: queue.clone(),
            sticky,
            timeout_ms,
            scheduled_time_ms: env.now_ms,
            speculative: true,
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
            t.speculative = true;
        });
        let schedule_to_start = if sticky && sticky_timeout > 0 {
            sticky_timeout
        } else {
            SPECULATIVE_SCHEDULE_TO_START_MS
        };
        self.push_timer(
            TaskKind::WorkflowTaskTimeout,
            env.now_ms.saturating_add(schedule_to_start),
            |t| {
                t.scheduled_event_id = scheduled_event_id;
                t.attempt = attempt;
                t.timeout_type = TimeoutType::ScheduleToStart as i32;
                t.speculative = true;
                t.workflow_task_time_ms = env.now_ms;
            },
        );
    }

    /// After a completion that needs no task for other reasons: updates admitted meanwhile get
    /// a speculative task when the worker takes the next task at once, a normal one otherwise.
    pub(crate) fn schedule_workflow_task_for_updates(&mut self, return_new: bool, env: &Env) {
        if !self.is_open() || self.state.workflow_task.is_some() || !self.updates.has_unsent() {
            return;
        }
        if return_new {
            self.schedule_speculative_workflow_task(env);
        } else {
            self.schedule_workflow_task(env);
        }
    }

    /// Called before any event is appended: a speculative task becomes a normal one first
    /// (its events precede the new one), or, when the run is closing and the task was not
    /// started, simply disappears.
    pub(crate) fn before_append(&mut self, event_type: EventType) {
        let Some(task) = self.state.workflow_task.as_ref().filter(|t| t.speculative) else {
            return;
        };
        if closes_run(event_type) && task.started_event_id == 0 {
            self.state.workflow_task = None;
            return;
        }
        self.convert_speculative_workflow_task(true);
    }

    /// Writes a speculative task's events because it is about to be completed, failed or timed
    /// out (so nothing needs arming).
    pub(crate) fn persist_speculative_workflow_task(&mut self) {
        self.convert_speculative_workflow_task(false);
    }

    /// Makes the speculative task a normal one: its Scheduled (and Started) events are written
    /// with the ids the worker saw. With `arm`, the task also gets what a normal task has in
    /// the store: a dispatch (not started) or a start-to-close timer (started).
    fn convert_speculative_workflow_task(&mut self, arm: bool) {
        let Some(task) = self.state.workflow_task.as_mut().filter(|t| t.speculative) else {
            return;
        };
        task.speculative = false;
        let task = task.clone();
        let started = task.started_event_id != 0;
        let events = self.transient_events(&task);
        for event in events.into_iter().take(if started { 2 } else { 1 }) {
            let time = event.event_time.as_ref().map_or(0, timestamp_ms);
            let Some(attributes) = event.attributes else {
                continue;
            };
            let id = self.append(time, attributes);
            debug_assert_eq!(id, event.event_id, "speculative task ids must hold");
        }
        if !arm {
            return;
        }
        let (scheduled, attempt) = (task.scheduled_event_id, task.attempt);
        if started {
            self.push_timer(
                TaskKind::WorkflowTaskTimeout,
                task.started_time_ms.saturating_add(task.timeout_ms),
                |t| {
                    t.scheduled_event_id = scheduled;
                    t.attempt = attempt;
                    t.timeout_type = TimeoutType::StartToClose as i32;
                },
            );
        } else {
            let normal = self.task_queue().to_string();
            self.push_transfer(TaskKind::DispatchWorkflowTask, |t| {
                t.scheduled_event_id = scheduled;
                t.attempt = attempt;
                t.task_queue = task.task_queue.clone();
                t.sticky = task.sticky;
                t.normal_task_queue = normal;
            });
        }
    }

    /// A memory-only timeout is for the speculative task pending now, not an earlier one that
    /// had the same ids.
    pub(crate) fn is_current_speculative_timer(
        &self,
        timer: &TaskInfo,
        task: &WorkflowTaskInfo,
    ) -> bool {
        if !timer.speculative {
            return true;
        }
        if !task.speculative {
            return false;
        }
        match TimeoutType::try_from(timer.timeout_type).unwrap_or_default() {
            TimeoutType::ScheduleToStart => {
                task.started_event_id == 0 && task.scheduled_time_ms == timer.workflow_task_time_ms
            }
            TimeoutType::StartToClose => task.started_time_ms == timer.workflow_task_time_ms,
            _ => false,
        }
    }

    /// Discards a speculative task the worker completed with update rejections only (and no
    /// commands): nothing is written, and the worker rolls back to the last completed task.
    /// `None` when the task must be kept (Temporal's `skipWorkflowTaskCompletedEvent`).
    pub(crate) fn discard_speculative_workflow_task(
        &mut self,
        task: &WorkflowTaskInfo,
        request: &RespondWorkflowTaskCompletedRequest,
        env: &Env,
    ) -> Option<CompletionOutcome> {
        if !task.speculative
            || !request.commands.is_empty()
            || request.force_create_new_workflow_task
        {
            return None;
        }
        let shipped = self.state.next_event_id - self.state.last_completed_wft_started_event_id - 2;
        let with_events = request
            .capabilities
            .as_ref()
            .is_some_and(|c| c.discard_speculative_workflow_task_with_events);
        if (!with_events && shipped > 0) || shipped > DISCARD_SPECULATIVE_MAX_EVENTS {
            return None;
        }
        if !self.rejections_apply(&request.messages) {
            return None;
        }
        self.state.workflow_task = None;
        self.apply_sticky_attributes(request);
        self.apply_rejections(&request.messages);
        self.reject_unprocessed_updates();
        let mut outcome = CompletionOutcome {
            reset_history_event_id: self.state.last_completed_wft_started_event_id,
            ..Default::default()
        };
        if self.updates.has_unsent() {
            self.schedule_speculative_workflow_task(env);
            if request.return_new_workflow_task {
                let build_id = crate::events::build_id_of(request);
                outcome.new_workflow_task =
                    self.start_pending_workflow_task(&request.identity, &build_id, env);
            }
        }
        Some(outcome)
    }

    /// What a completion records about the worker's sticky queue (kept in memory only when
    /// the task is discarded).
    pub(crate) fn apply_sticky_attributes(
        &mut self,
        request: &RespondWorkflowTaskCompletedRequest,
    ) {
        match request
            .sticky_attributes
            .as_ref()
            .and_then(|s| s.worker_task_queue.as_ref().map(|q| (q, s)))
        {
            Some((queue, sticky)) if !queue.name.is_empty() => {
                self.state.sticky_task_queue = queue.name.clone();
                // Temporal does not check this timeout; a negative one is none, a huge one
                // is capped like every other duration.
                self.state.sticky_schedule_to_start_ms =
                    duration_ms(sticky.schedule_to_start_timeout.as_ref())
                        .clamp(0, MAX_DURATION_SECONDS * 1000);
            }
            _ => {
                self.state.sticky_task_queue.clear();
                self.state.sticky_schedule_to_start_ms = 0;
            }
        }
    }

    /// Starts the pending task for the worker that completed the last one (returned in its
    /// completion response instead of dispatched).
    fn start_pending_workflow_task(
        &mut self,
        identity: &str,
        build_id: &str,
        env: &Env,
    ) -> Option<WorkflowTaskStart> {
        let next = self.state.workflow_task.clone()?;
        if next.started_event_id != 0 {
            return None;
        }
        self.tasks.retain(|t| {
            !(t.task_kind() == TaskKind::DispatchWorkflowTask
                && t.scheduled_event_id == next.scheduled_event_id)
        });
        let request_id = crate::commands::NEXT_TASK_REQUEST_ID;
        self.record_workflow_task_started(
            next.scheduled_event_id,
            next.attempt,
            request_id,
            identity,
            build_id,
            &next.task_queue,
            env,
        )
        .ok()
    }
}
