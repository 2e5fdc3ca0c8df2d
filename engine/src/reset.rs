//! ResetWorkflowExecution: a new run rebuilt from a prefix of another run's history.
//!
//! The new run keeps the base run's events before the reset point, then writes a
//! WorkflowTaskFailed (cause RESET_WORKFLOW) in the server's name for the workflow task pending
//! there, re-applies the signals and updates the base run received after the point, and
//! schedules a workflow task on the normal queue. What was pending at the point (activities,
//! timers, children, external signals and cancels) is pending again, with its tasks made anew.

use std::collections::BTreeMap;

use prost::Message;
use temporalio_protos::temporal::api::{
    enums::v1::{
        EventType, UpdateAdmittedEventOrigin, WorkflowExecutionStatus, WorkflowTaskFailedCause,
    },
    failure::v1::{Failure, ResetWorkflowFailureInfo, failure::FailureInfo},
    history::v1::{
        HistoryEvent, StartChildWorkflowExecutionInitiatedEventAttributes,
        WorkflowExecutionSignaledEventAttributes, WorkflowExecutionUpdateAdmittedEventAttributes,
        WorkflowTaskFailedEventAttributes, WorkflowTaskStartedEventAttributes,
        history_event::Attributes,
    },
    update::v1::Request,
};

use crate::state::{ExternalInfo, MutableState, TaskKind, TimerInfo, WorkflowTaskInfo};
use crate::time::duration_ms;
use crate::update::UpdateInfo;
use crate::workflow::{Env, Workflow};
use crate::{Error, Result};

/// Identity Temporal gives the events the server writes itself during a reset.
pub const RESET_IDENTITY: &str = "history-service";
/// Identity on the termination of the run a reset replaces.
pub const RESETTER_IDENTITY: &str = "history-resetter";
/// Request id of the WorkflowTaskStarted event a reset writes (Temporal's value).
const RESET_STARTED_REQUEST_ID: &str = "emptyUuid";

/// What a reset re-applies from after its point (Temporal's reset reapply exclude types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reapply {
    /// Signals.
    pub signals: bool,
    /// Updates.
    pub updates: bool,
}

impl Default for Reapply {
    fn default() -> Self {
        Self {
            signals: true,
            updates: true,
        }
    }
}

/// What a reset asks for besides the base run's history.
#[derive(Debug, Clone, Default)]
pub struct ResetParams {
    /// Id of the WorkflowTaskCompleted (or Failed, TimedOut, Started) event to reset to; the
    /// new run keeps the events before it.
    pub workflow_task_finish_event_id: i64,
    /// Why; becomes the failure message of the WorkflowTaskFailed event.
    pub reason: String,
    /// Request id of the reset (required; Temporal does not dedupe resets by it).
    pub request_id: String,
}

/// The update id of an update request.
fn update_id_of(request: Option<&Request>) -> String {
    request
        .and_then(|r| r.meta.as_ref())
        .map(|m| m.update_id.clone())
        .unwrap_or_default()
}

/// Pending work found while folding the kept events, to be re-armed in the new run.
#[derive(Default)]
struct Pending {
    /// StartChildWorkflowExecutionInitiated attributes of children not started yet.
    child_starts: BTreeMap<i64, StartChildWorkflowExecutionInitiatedEventAttributes>,
    /// Encoded SignalExternalWorkflowExecutionInitiated attributes, by initiated id.
    signal_payloads: BTreeMap<i64, (Vec<u8>, bool)>,
    /// Reason and child-only flag of RequestCancelExternal initiated events, by initiated id.
    cancel_payloads: BTreeMap<i64, (String, bool)>,
}

impl Workflow {
    /// Builds the run a reset creates from `base` (its state) and `history` (its events, from
    /// event 1 at least up to the reset point). The new run's id is `env.new_run_id`.
    /// Signals to re-apply are added with [`Workflow::reapply_after_reset`]; then
    /// [`Workflow::finish_reset`] schedules the workflow task.
    pub fn reset_from(
        base: &MutableState,
        history: &[HistoryEvent],
        params: &ResetParams,
        env: &Env,
    ) -> Result<Self> {
        let finish = params.workflow_task_finish_event_id;
        if finish <= 1 || finish >= base.next_event_id {
            return Err(Error::InvalidArgument(
                "Workflow task finish ID must be > 1 && <= workflow last event ID.".into(),
            ));
        }
        let kept: Vec<&HistoryEvent> = history.iter().filter(|e| e.event_id < finish).collect();
        if kept.len() as i64 != finish - 1 || kept.iter().zip(1..).any(|(e, i)| e.event_id != i) {
            return Err(Error::InvalidArgument(format!(
                "The history of run {} is incomplete before event {finish}.",
                base.run_id
            )));
        }
        let mut wf = Self::from_state(MutableState {
            namespace_id: base.namespace_id.clone(),
            workflow_id: base.workflow_id.clone(),
            run_id: env.new_run_id.clone(),
            namespace_name: base.namespace_name.clone(),
            status: WorkflowExecutionStatus::Running as i32,
            next_event_id: 1,
            // As Temporal: the reset run answers to the original start's request id.
            start_request_id: base.start_request_id.clone(),
            workflow_task_attempt: 1,
            last_reset_time_ms: env.now_ms,
            ..Default::default()
        });
        let mut pending = Pending::default();
        for event in kept {
            wf.fold(event, &mut pending)?;
            wf.keep_event(event.clone());
        }
        let Some(task) = wf.state.workflow_task.clone() else {
            return Err(Error::InvalidArgument(format!(
                "Can only reset workflow to event ID in range [WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: {finish}"
            )));
        };
        // As Temporal: the new run starts now (its run timeout counts from here); the original
        // start is remembered.
        wf.state.original_start_time_ms = if base.original_start_time_ms > 0 {
            base.original_start_time_ms
        } else {
            wf.state.start_time_ms
        };
        wf.state.execution_time_ms += env.now_ms - wf.state.start_time_ms;
        wf.state.start_time_ms = env.now_ms;
        wf.fail_task_for_reset(&task, &base.run_id, &params.reason, env);
        wf.rearm_pending(pending, env);
        Ok(wf)
    }

    /// Re-applies what `events` (from the base run after the reset point, and from the runs
    /// that followed it) received from outside: signals, keeping their attributes, and
    /// updates, as WorkflowExecutionUpdateAdmitted (origin REAPPLY) for the worker to run again
    /// (an update accepted without its request follows its own admitted event).
    pub fn reapply_after_reset(&mut self, events: &[HistoryEvent], reapply: Reapply, env: &Env) {
        for event in events {
            match &event.attributes {
                Some(Attributes::WorkflowExecutionSignaledEventAttributes(a))
                    if reapply.signals =>
                {
                    self.reapply_signal(a, env)
                }
                Some(Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(a))
                    if reapply.updates =>
                {
                    self.reapply_update(a.request.clone(), env)
                }
                Some(Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a))
                    if reapply.updates =>
                {
                    self.reapply_update(a.accepted_request.clone(), env)
                }
                Some(attributes) => self.reapply_child_event(attributes, env),
                None => {}
            }
        }
    }

    /// What happened after the reset point to a child that was pending at it (started, closed,
    /// or failed to start) is written again, as Temporal does, so the new run does not wait on
    /// a child that is long gone.
    fn reapply_child_event(&mut self, attributes: &Attributes, env: &Env) {
        let initiated_event_id = match attributes {
            Attributes::ChildWorkflowExecutionStartedEventAttributes(a) => a.initiated_event_id,
            other => match crate::events::child_closed_initiated_id(other) {
                Some(id) => id,
                None => return,
            },
        };
        let Some(child) = self.state.children.get(&initiated_event_id).cloned() else {
            return;
        };
        // The child was started (by the base run): it is not started again.
        self.tasks.retain(|t| {
            !(t.task_kind() == TaskKind::StartChild && t.scheduled_event_id == initiated_event_id)
        });
        let mut attributes = attributes.clone();
        match &mut attributes {
            Attributes::ChildWorkflowExecutionStartedEventAttributes(a) => {
                if child.started_event_id != 0 {
                    return;
                }
                let run_id = a
                    .workflow_execution
                    .as_ref()
                    .map(|e| e.run_id.clone())
                    .unwrap_or_default();
                let id = self.append(env.now_ms, attributes);
                let child = self
                    .state
                    .children
                    .get_mut(&initiated_event_id)
                    .expect("pending");
                child.started_event_id = id;
                child.run_id = run_id;
                return;
            }
            // A close event points at the started event's id in this run.
            other => {
                if let Some((_, started)) = crate::events::child_close_started_id_mut(other) {
                    *started = child.started_event_id;
                }
            }
        }
        self.append(env.now_ms, attributes);
        self.state.children.remove(&initiated_event_id);
    }

    fn reapply_update(&mut self, request: Option<Request>, env: &Env) {
        let Some(request) = request else {
            return;
        };
        let update_id = update_id_of(Some(&request));
        if self.state.updates.contains_key(&update_id) {
            return;
        }
        let admitted_event_id = self.append(
            env.now_ms,
            Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(
                WorkflowExecutionUpdateAdmittedEventAttributes {
                    request: Some(request),
                    origin: UpdateAdmittedEventOrigin::Reapply as i32,
                },
            ),
        );
        self.state.updates.insert(
            update_id,
            UpdateInfo {
                accepted_event_id: 0,
                completed_event_id: 0,
                admitted_event_id,
            },
        );
    }

    fn reapply_signal(&mut self, a: &WorkflowExecutionSignaledEventAttributes, env: &Env) {
        if !a.request_id.is_empty() && self.state.signal_request_ids.contains(&a.request_id) {
            return;
        }
        self.append(
            env.now_ms,
            Attributes::WorkflowExecutionSignaledEventAttributes(a.clone()),
        );
    }

    /// Schedules the new run's workflow task (on the normal queue).
    pub fn finish_reset(&mut self, env: &Env) {
        self.schedule_workflow_task(env);
    }

    /// The events this request has recorded so far (not yet taken as changes).
    pub fn pending_events(&self) -> &[HistoryEvent] {
        &self.events
    }

    /// Appends a copy of a base-run event with its own id and time.
    fn keep_event(&mut self, event: HistoryEvent) {
        self.state.next_event_id = event.event_id + 1;
        self.state.history_size_bytes += event.encoded_len() as i64;
        self.events.push(event);
    }

    /// WorkflowTaskFailed(RESET_WORKFLOW) for the task pending at the reset point, after a
    /// WorkflowTaskStarted in the server's name if the task had not started. (A started task
    /// keeps its own started event, as the reference server does when the reset point follows
    /// it directly.)
    fn fail_task_for_reset(
        &mut self,
        task: &WorkflowTaskInfo,
        base_run_id: &str,
        reason: &str,
        env: &Env,
    ) {
        let started_event_id = if task.started_event_id != 0 {
            task.started_event_id
        } else {
            let history_size_bytes = self.state.history_size_bytes;
            self.append(
                env.now_ms,
                Attributes::WorkflowTaskStartedEventAttributes(
                    WorkflowTaskStartedEventAttributes {
                        scheduled_event_id: task.scheduled_event_id,
                        identity: RESET_IDENTITY.into(),
                        request_id: RESET_STARTED_REQUEST_ID.into(),
                        history_size_bytes,
                        ..Default::default()
                    },
                ),
            )
        };
        self.append(
            env.now_ms,
            Attributes::WorkflowTaskFailedEventAttributes(WorkflowTaskFailedEventAttributes {
                scheduled_event_id: task.scheduled_event_id,
                started_event_id,
                cause: WorkflowTaskFailedCause::ResetWorkflow as i32,
                failure: Some(Failure {
                    message: reason.to_string(),
                    failure_info: Some(FailureInfo::ResetWorkflowFailureInfo(
                        ResetWorkflowFailureInfo::default(),
                    )),
                    ..Default::default()
                }),
                identity: RESET_IDENTITY.into(),
                base_run_id: base_run_id.to_string(),
                new_run_id: self.state.run_id.clone(),
                ..Default::default()
            }),
        );
        self.state.workflow_task = None;
        self.state.workflow_task_attempt = 1;
    }

    /// Makes the tasks of everything pending at the reset point: activities are scheduled
    /// anew (now), timers fire at their original time, children not started yet and external
    /// signals and cancels are sent again, and the run timeout counts from the reset.
    fn rearm_pending(&mut self, pending: Pending, env: &Env) {
        let activity_ids: Vec<i64> = self.state.activities.keys().copied().collect();
        for id in activity_ids {
            let ai = self.state.activities.get_mut(&id).expect("listed");
            ai.first_scheduled_time_ms = env.now_ms;
            ai.scheduled_time_ms = env.now_ms;
            let s2c = ai
                .scheduled
                .as_ref()
                .map_or(0, |s| duration_ms(s.schedule_to_close_timeout.as_ref()));
            self.dispatch_activity(id, env);
            self.arm_schedule_to_close(id, s2c, env);
        }
        let timers: Vec<TimerInfo> = self.state.timers.values().cloned().collect();
        for timer in timers {
            self.push_timer(TaskKind::UserTimer, timer.expiry_time_ms, |t| {
                t.timer_id = timer.timer_id;
                t.scheduled_event_id = timer.started_event_id;
            });
        }
        for (id, initiated) in pending.child_starts {
            let namespace_id = self.state.namespace_id.clone();
            let workflow_id = initiated.workflow_id.clone();
            let payload = initiated.encode_to_vec();
            let root = self.root_execution();
            self.push_transfer(TaskKind::StartChild, |t| {
                t.scheduled_event_id = id;
                t.payload = payload;
                t.target_namespace_id = namespace_id;
                t.target_workflow_id = workflow_id;
                t.root_execution = Some(root);
            });
        }
        let externals: Vec<(i64, TaskKind, ExternalInfo, Vec<u8>, bool)> =
            pending
                .signal_payloads
                .into_iter()
                .filter_map(|(id, (payload, child_only))| {
                    let info = self.state.pending_signals.get(&id)?.clone();
                    Some((id, TaskKind::SignalExternal, info, payload, child_only))
                })
                .chain(pending.cancel_payloads.into_iter().filter_map(
                    |(id, (reason, child_only))| {
                        let info = self.state.pending_cancels.get(&id)?.clone();
                        Some((
                            id,
                            TaskKind::CancelExternal,
                            info,
                            reason.into_bytes(),
                            child_only,
                        ))
                    },
                ))
                .collect();
        for (id, kind, info, payload, child_only) in externals {
            let namespace_id = self.state.namespace_id.clone();
            self.push_transfer(kind, |t| {
                t.scheduled_event_id = id;
                t.payload = payload;
                t.target_namespace_id = namespace_id;
                t.target_workflow_id = info.workflow_id;
                t.target_run_id = info.run_id;
                t.child_workflow_only = child_only;
            });
        }
        let run_timeout = duration_ms(self.started_attributes().workflow_run_timeout.as_ref());
        if run_timeout > 0 {
            self.push_timer(
                TaskKind::WorkflowRunTimeout,
                self.state.start_time_ms.saturating_add(run_timeout),
                |_| {},
            );
        }
    }

    /// Applies one kept event to the state being rebuilt (through the one event applier),
    /// noting what must be re-armed in the new run.
    fn fold(&mut self, event: &HistoryEvent, pending: &mut Pending) -> Result<()> {
        let id = event.event_id;
        let Some(attributes) = &event.attributes else {
            return Ok(());
        };
        let kind = EventType::try_from(event.event_type).unwrap_or(EventType::Unspecified);
        let closes_run = matches!(
            kind,
            EventType::WorkflowExecutionCompleted
                | EventType::WorkflowExecutionFailed
                | EventType::WorkflowExecutionTimedOut
                | EventType::WorkflowExecutionCanceled
                | EventType::WorkflowExecutionTerminated
                | EventType::WorkflowExecutionContinuedAsNew
        );
        if closes_run {
            return Err(Error::InvalidArgument(format!(
                "Cannot reset to event {id}: the run had closed by then."
            )));
        }
        self.state.apply_event(event);
        if let Some(initiated) = crate::events::child_closed_initiated_id(attributes) {
            pending.child_starts.remove(&initiated);
        }
        match attributes {
            Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a) => {
                pending.child_starts.insert(id, a.clone());
            }
            Attributes::ChildWorkflowExecutionStartedEventAttributes(a) => {
                pending.child_starts.remove(&a.initiated_event_id);
            }
            Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) => {
                pending
                    .signal_payloads
                    .insert(id, (a.encode_to_vec(), a.child_workflow_only));
            }
            Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a) => {
                pending
                    .cancel_payloads
                    .insert(id, (a.reason.clone(), a.child_workflow_only));
            }
            _ => {}
        }
        Ok(())
    }
}
