//! DescribeWorkflowExecution's answer, built from a run's mutable state.

use sundial_engine::api::activity::v1::ActivityOptions;
use sundial_engine::api::workflow::v1::{
    RequestIdInfo, ResetPoints, WorkflowExecutionExtendedInfo,
};

use super::*;

/// The DescribeWorkflowExecution response for a run.
pub(super) fn describe(state: &MutableState) -> DescribeWorkflowExecutionResponse {
    let attrs = state.started.clone().unwrap_or_default();
    let execution = WorkflowExecution {
        workflow_id: state.workflow_id.clone(),
        run_id: state.run_id.clone(),
    };
    let pending_activities = state
        .activities
        .values()
        .map(|ai| {
            let s = ai.scheduled.clone().unwrap_or_default();
            let activity_state = if ai.cancel_requested {
                PendingActivityState::CancelRequested
            } else if ai.started_time_ms != 0 {
                PendingActivityState::Started
            } else {
                PendingActivityState::Scheduled
            };
            let schedule_to_close = duration_ms(s.schedule_to_close_timeout.as_ref());
            // The start time stands in for the last heartbeat until one arrives.
            let heartbeat_ms = ai.last_heartbeat_time_ms;
            let heartbeated = heartbeat_ms > 0 && heartbeat_ms != ai.started_time_ms;
            let last_worker_identity = if ai.started_time_ms != 0 {
                ai.started_identity.clone()
            } else {
                ai.last_worker_identity.clone()
            };
            let task_queue = s.task_queue.clone().map(|q| TaskQueue {
                normal_name: q.name.clone(),
                name: q.name,
                kind: 0,
            });
            PendingActivityInfo {
                activity_id: s.activity_id.clone(),
                activity_type: s.activity_type.clone(),
                state: activity_state as i32,
                heartbeat_details: ai.heartbeat_details.clone(),
                last_heartbeat_time: heartbeated.then(|| timestamp(heartbeat_ms)),
                last_started_time: (ai.started_time_ms > 0).then(|| timestamp(ai.started_time_ms)),
                attempt: ai.attempt,
                maximum_attempts: s.retry_policy.as_ref().map_or(0, |p| p.maximum_attempts),
                scheduled_time: Some(timestamp(ai.scheduled_time_ms)),
                expiration_time: (schedule_to_close > 0)
                    .then(|| timestamp(ai.first_scheduled_time_ms + schedule_to_close)),
                last_failure: ai.last_failure.clone(),
                last_worker_identity,
                activity_options: Some(ActivityOptions {
                    task_queue,
                    schedule_to_close_timeout: s.schedule_to_close_timeout,
                    schedule_to_start_timeout: s.schedule_to_start_timeout,
                    start_to_close_timeout: s.start_to_close_timeout,
                    heartbeat_timeout: s.heartbeat_timeout,
                    retry_policy: s.retry_policy,
                    priority: s.priority,
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let pending_workflow_task = state
        .workflow_task
        .as_ref()
        .map(|t| PendingWorkflowTaskInfo {
            state: if t.started_event_id != 0 {
                PendingWorkflowTaskState::Started as i32
            } else {
                PendingWorkflowTaskState::Scheduled as i32
            },
            scheduled_time: Some(timestamp(t.scheduled_time_ms)),
            original_scheduled_time: Some(timestamp(t.scheduled_time_ms)),
            started_time: (t.started_time_ms > 0).then(|| timestamp(t.started_time_ms)),
            attempt: t.attempt,
        });
    DescribeWorkflowExecutionResponse {
        execution_config: Some(WorkflowExecutionConfig {
            task_queue: attrs.task_queue.clone(),
            workflow_execution_timeout: attrs.workflow_execution_timeout,
            workflow_run_timeout: attrs.workflow_run_timeout,
            default_workflow_task_timeout: attrs.workflow_task_timeout,
            ..Default::default()
        }),
        workflow_execution_info: Some(WorkflowExecutionInfo {
            execution: Some(execution.clone()),
            r#type: attrs.workflow_type.clone(),
            start_time: Some(timestamp(state.start_time_ms)),
            close_time: (state.close_time_ms > 0).then(|| timestamp(state.close_time_ms)),
            status: state.status,
            history_length: state.next_event_id - 1,
            execution_time: Some(timestamp(state.execution_time_ms)),
            memo: attrs.memo.clone(),
            search_attributes: attrs.search_attributes.clone(),
            task_queue: attrs
                .task_queue
                .as_ref()
                .map(|q| q.name.clone())
                .unwrap_or_default(),
            history_size_bytes: state.history_size_bytes,
            first_run_id: attrs.first_execution_run_id.clone(),
            parent_namespace_id: attrs.parent_workflow_namespace_id.clone(),
            parent_execution: attrs.parent_workflow_execution.clone(),
            // A run with no parent is its own root.
            root_execution: attrs
                .root_workflow_execution
                .clone()
                .or_else(|| Some(execution.clone())),
            auto_reset_points: (!state.auto_reset_points.is_empty()).then(|| ResetPoints {
                points: state.auto_reset_points.clone(),
            }),
            execution_duration: (state.close_time_ms > 0)
                .then(|| sundial_engine::time::duration(state.close_time_ms - state.start_time_ms)),
            state_transition_count: state.next_event_id - 1,
            ..Default::default()
        }),
        pending_activities,
        pending_workflow_task,
        pending_children: state
            .children
            .values()
            .map(
                |c| sundial_engine::api::workflow::v1::PendingChildExecutionInfo {
                    workflow_id: c.workflow_id.clone(),
                    run_id: c.run_id.clone(),
                    workflow_type_name: c.workflow_type.clone(),
                    initiated_id: c.initiated_event_id,
                    parent_close_policy: c.parent_close_policy,
                },
            )
            .collect(),
        workflow_extended_info: Some(extended_info(state, &attrs)),
        ..Default::default()
    }
}

/// Expiration times, reset links and the request ids the run has seen.
fn extended_info(
    state: &MutableState,
    attrs: &WorkflowExecutionStartedEventAttributes,
) -> WorkflowExecutionExtendedInfo {
    let run_timeout = duration_ms(attrs.workflow_run_timeout.as_ref());
    let mut request_id_infos = std::collections::HashMap::new();
    if !state.start_request_id.is_empty() {
        request_id_infos.insert(
            state.start_request_id.clone(),
            RequestIdInfo {
                event_type: EventType::WorkflowExecutionStarted as i32,
                event_id: 1,
                buffered: false,
            },
        );
    }
    WorkflowExecutionExtendedInfo {
        execution_expiration_time: attrs.workflow_execution_expiration_time,
        run_expiration_time: (run_timeout > 0)
            .then(|| timestamp(state.start_time_ms + run_timeout)),
        cancel_requested: state.cancel_requested,
        last_reset_time: (state.last_reset_time_ms > 0)
            .then(|| timestamp(state.last_reset_time_ms)),
        original_start_time: Some(timestamp(if state.original_start_time_ms > 0 {
            state.original_start_time_ms
        } else {
            state.start_time_ms
        })),
        reset_run_id: state.reset_run_id.clone(),
        request_id_infos,
        ..Default::default()
    }
}
