//! The one event applier: what each history event means for the [`MutableState`] it belongs
//! to. The live path runs every event it appends through it ([`Workflow::append`]), and a
//! reset rebuilds a run by folding a prefix of history through it, so the two cannot drift.
//!
//! It covers what an event alone tells: pending activities, timers, children, external
//! signals and cancels, updates, signals received, the cancel request, search attributes and
//! memo, the run's close, and (when folding) the workflow task. What history does not hold
//! stays with the code that owns it: activity attempts and heartbeats, task ids, transient and
//! speculative workflow tasks (which write no events), the parent-close policies carried out.
//!
//! [`Workflow::append`]: crate::workflow::Workflow

use temporalio_protos::temporal::api::{
    enums::v1::WorkflowExecutionStatus,
    history::v1::{HistoryEvent, history_event::Attributes},
};

use crate::state::{
    ActivityInfo, ChildInfo, ExternalInfo, MutableState, TimerInfo, WorkflowTaskInfo,
};
use crate::time::{duration_ms, timestamp_ms};
use crate::update::UpdateInfo;

impl MutableState {
    /// Applies one event of this run's history (folding: the workflow task included).
    pub fn apply_event(&mut self, event: &HistoryEvent) {
        if !self.apply_workflow_task_event(event) {
            self.apply_run_event(event);
        }
    }

    /// The workflow-task part: true when `event` is a workflow-task event (applied here).
    /// The live path leaves these to the workflow-task code, which also keeps the attempts
    /// that write no events.
    fn apply_workflow_task_event(&mut self, event: &HistoryEvent) -> bool {
        let time_ms = event.event_time.as_ref().map_or(0, timestamp_ms);
        let id = event.event_id;
        match &event.attributes {
            Some(Attributes::WorkflowTaskScheduledEventAttributes(a)) => {
                let queue = a.task_queue.clone().unwrap_or_default();
                self.workflow_task = Some(WorkflowTaskInfo {
                    scheduled_event_id: id,
                    attempt: a.attempt.max(1),
                    sticky: queue.kind == 2,
                    task_queue: queue.name,
                    timeout_ms: duration_ms(a.start_to_close_timeout.as_ref()),
                    scheduled_time_ms: time_ms,
                    ..Default::default()
                });
            }
            Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => {
                if let Some(task) = self.workflow_task.as_mut() {
                    task.started_event_id = id;
                    task.started_time_ms = time_ms;
                    task.request_id = a.request_id.clone();
                    task.identity = a.identity.clone();
                }
            }
            Some(Attributes::WorkflowTaskCompletedEventAttributes(a)) => {
                self.last_completed_wft_started_event_id = a.started_event_id;
                self.workflow_task = None;
                if let Some(started) = self.started.as_mut() {
                    crate::search_attributes::add_build_id(
                        &mut started.search_attributes,
                        a.worker_version.as_ref(),
                    );
                }
            }
            Some(
                Attributes::WorkflowTaskFailedEventAttributes(_)
                | Attributes::WorkflowTaskTimedOutEventAttributes(_),
            ) => self.workflow_task = None,
            _ => return false,
        }
        true
    }

    /// Everything but the workflow task: what the live path applies as it appends `event`
    /// (a buffered event is applied when it arrives, with its placeholder id).
    pub(crate) fn apply_run_event(&mut self, event: &HistoryEvent) {
        let time_ms = event.event_time.as_ref().map_or(0, timestamp_ms);
        let id = event.event_id;
        let Some(attributes) = &event.attributes else {
            return;
        };
        if let Some(initiated) = crate::events::child_closed_initiated_id(attributes) {
            self.children.remove(&initiated);
            return;
        }
        if let Some(status) = closed_status(attributes) {
            // The run closed: nothing stays pending.
            self.status = status as i32;
            self.close_event_id = id;
            self.close_time_ms = time_ms;
            self.workflow_task = None;
            self.activities.clear();
            self.timers.clear();
            self.children.clear();
            self.pending_signals.clear();
            self.pending_cancels.clear();
            return;
        }
        match attributes {
            Attributes::WorkflowExecutionStartedEventAttributes(a) => {
                let backoff = duration_ms(a.first_workflow_task_backoff.as_ref());
                self.started = Some(a.clone());
                self.start_time_ms = time_ms;
                self.execution_time_ms = time_ms.saturating_add(backoff.max(0));
            }
            Attributes::ActivityTaskScheduledEventAttributes(a) => {
                self.activities.insert(
                    id,
                    ActivityInfo {
                        scheduled_event_id: id,
                        scheduled: Some(a.clone()),
                        attempt: 1,
                        first_scheduled_time_ms: time_ms,
                        scheduled_time_ms: time_ms,
                        ..Default::default()
                    },
                );
            }
            Attributes::ActivityTaskCancelRequestedEventAttributes(a) => {
                if let Some(ai) = self.activities.get_mut(&a.scheduled_event_id) {
                    ai.cancel_requested = true;
                    ai.cancel_requested_event_id = id;
                }
            }
            Attributes::ActivityTaskCompletedEventAttributes(a) => {
                self.activities.remove(&a.scheduled_event_id);
            }
            Attributes::ActivityTaskFailedEventAttributes(a) => {
                self.activities.remove(&a.scheduled_event_id);
            }
            Attributes::ActivityTaskTimedOutEventAttributes(a) => {
                self.activities.remove(&a.scheduled_event_id);
            }
            Attributes::ActivityTaskCanceledEventAttributes(a) => {
                self.activities.remove(&a.scheduled_event_id);
            }
            Attributes::TimerStartedEventAttributes(a) => {
                self.timers.insert(
                    a.timer_id.clone(),
                    TimerInfo {
                        timer_id: a.timer_id.clone(),
                        started_event_id: id,
                        expiry_time_ms: time_ms
                            .saturating_add(duration_ms(a.start_to_fire_timeout.as_ref())),
                    },
                );
            }
            Attributes::TimerFiredEventAttributes(a) => {
                self.timers.remove(&a.timer_id);
            }
            Attributes::TimerCanceledEventAttributes(a) => {
                self.timers.remove(&a.timer_id);
            }
            Attributes::WorkflowExecutionSignaledEventAttributes(a) => {
                self.signal_count += 1;
                if !a.request_id.is_empty() {
                    self.signal_request_ids.push(a.request_id.clone());
                }
            }
            Attributes::WorkflowExecutionCancelRequestedEventAttributes(_) => {
                self.cancel_requested = true;
            }
            Attributes::UpsertWorkflowSearchAttributesEventAttributes(a) => {
                if let (Some(new), Some(started)) = (&a.search_attributes, self.started.as_mut()) {
                    let current = started
                        .search_attributes
                        .get_or_insert_with(Default::default);
                    for (k, v) in &new.indexed_fields {
                        current.indexed_fields.insert(k.clone(), v.clone());
                    }
                }
            }
            Attributes::WorkflowPropertiesModifiedEventAttributes(a) => {
                if let (Some(new), Some(started)) = (&a.upserted_memo, self.started.as_mut()) {
                    let current = started.memo.get_or_insert_with(Default::default);
                    for (k, v) in &new.fields {
                        current.fields.insert(k.clone(), v.clone());
                    }
                }
            }
            Attributes::StartChildWorkflowExecutionInitiatedEventAttributes(a) => {
                self.children.insert(
                    id,
                    ChildInfo {
                        initiated_event_id: id,
                        workflow_id: a.workflow_id.clone(),
                        namespace: a.namespace.clone(),
                        namespace_id: a.namespace_id.clone(),
                        workflow_type: a
                            .workflow_type
                            .as_ref()
                            .map(|t| t.name.clone())
                            .unwrap_or_default(),
                        parent_close_policy: a.parent_close_policy,
                        workflow_task_completed_event_id: a.workflow_task_completed_event_id,
                        control: a.control.clone(),
                        ..Default::default()
                    },
                );
            }
            Attributes::ChildWorkflowExecutionStartedEventAttributes(a) => {
                if let Some(child) = self.children.get_mut(&a.initiated_event_id) {
                    child.started_event_id = id;
                    child.run_id = a
                        .workflow_execution
                        .as_ref()
                        .map(|e| e.run_id.clone())
                        .unwrap_or_default();
                }
            }
            Attributes::SignalExternalWorkflowExecutionInitiatedEventAttributes(a) => {
                let info = external_info(
                    id,
                    (&a.namespace, &a.namespace_id),
                    a.workflow_execution.clone(),
                    &a.control,
                    a.workflow_task_completed_event_id,
                );
                self.pending_signals.insert(id, info);
            }
            Attributes::ExternalWorkflowExecutionSignaledEventAttributes(a) => {
                self.pending_signals.remove(&a.initiated_event_id);
            }
            Attributes::SignalExternalWorkflowExecutionFailedEventAttributes(a) => {
                self.pending_signals.remove(&a.initiated_event_id);
            }
            Attributes::RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(a) => {
                let info = external_info(
                    id,
                    (&a.namespace, &a.namespace_id),
                    a.workflow_execution.clone(),
                    &a.control,
                    a.workflow_task_completed_event_id,
                );
                self.pending_cancels.insert(id, info);
            }
            Attributes::ExternalWorkflowExecutionCancelRequestedEventAttributes(a) => {
                self.pending_cancels.remove(&a.initiated_event_id);
            }
            Attributes::RequestCancelExternalWorkflowExecutionFailedEventAttributes(a) => {
                self.pending_cancels.remove(&a.initiated_event_id);
            }
            Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(a) => {
                self.updates.insert(
                    a.protocol_instance_id.clone(),
                    UpdateInfo {
                        accepted_event_id: id,
                        completed_event_id: 0,
                        admitted_event_id: 0,
                    },
                );
            }
            Attributes::WorkflowExecutionUpdateAdmittedEventAttributes(a) => {
                let update_id = a
                    .request
                    .as_ref()
                    .and_then(|r| r.meta.as_ref())
                    .map(|m| m.update_id.clone())
                    .unwrap_or_default();
                self.updates.entry(update_id).or_insert(UpdateInfo {
                    accepted_event_id: 0,
                    completed_event_id: 0,
                    admitted_event_id: id,
                });
            }
            Attributes::WorkflowExecutionUpdateCompletedEventAttributes(a) => {
                let update_id = a.meta.as_ref().map_or("", |m| m.update_id.as_str());
                if let Some(info) = self.updates.get_mut(update_id) {
                    info.completed_event_id = id;
                }
            }
            _ => {}
        }
    }
}

/// The status a run-closing event leaves the run in; `None` for any other event.
fn closed_status(attributes: &Attributes) -> Option<WorkflowExecutionStatus> {
    use WorkflowExecutionStatus as S;
    Some(match attributes {
        Attributes::WorkflowExecutionCompletedEventAttributes(_) => S::Completed,
        Attributes::WorkflowExecutionFailedEventAttributes(_) => S::Failed,
        Attributes::WorkflowExecutionTimedOutEventAttributes(_) => S::TimedOut,
        Attributes::WorkflowExecutionCanceledEventAttributes(_) => S::Canceled,
        Attributes::WorkflowExecutionTerminatedEventAttributes(_) => S::Terminated,
        Attributes::WorkflowExecutionContinuedAsNewEventAttributes(_) => S::ContinuedAsNew,
        _ => return None,
    })
}

/// The pending record of a SignalExternal or RequestCancelExternal initiated event.
fn external_info(
    initiated_event_id: i64,
    (namespace, namespace_id): (&str, &str),
    target: Option<temporalio_protos::temporal::api::common::v1::WorkflowExecution>,
    control: &str,
    workflow_task_completed_event_id: i64,
) -> ExternalInfo {
    let target = target.unwrap_or_default();
    ExternalInfo {
        initiated_event_id,
        namespace: namespace.to_string(),
        namespace_id: namespace_id.to_string(),
        workflow_id: target.workflow_id,
        run_id: target.run_id,
        control: control.to_string(),
        workflow_task_completed_event_id,
    }
}
