//! DescribeWorkflowExecution's answer, built from a run's mutable state.

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
            PendingActivityInfo {
                activity_id: s.activity_id,
                activity_type: s.activity_type,
                state: activity_state as i32,
                heartbeat_details: ai.heartbeat_details.clone(),
                last_heartbeat_time: (ai.last_heartbeat_time_ms > 0)
                    .then(|| timestamp(ai.last_heartbeat_time_ms)),
                last_started_time: (ai.started_time_ms > 0).then(|| timestamp(ai.started_time_ms)),
                attempt: ai.attempt,
                maximum_attempts: s.retry_policy.map_or(0, |p| p.maximum_attempts),
                scheduled_time: Some(timestamp(ai.scheduled_time_ms)),
                last_failure: ai.last_failure.clone(),
                last_worker_identity: ai.last_worker_identity.clone(),
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
            execution: Some(execution),
            r#type: attrs.workflow_type.clone(),
            start_time: Some(timestamp(state.start_time_ms)),
            close_time: (state.close_time_ms > 0).then(|| timestamp(state.close_time_ms)),
            status: state.status,
            history_length: state.next_event_id - 1,
            execution_time: Some(timestamp(state.execution_time_ms)),
            memo: attrs.memo.clone(),
            search_attributes: attrs.search_attributes.clone(),
            task_queue: attrs.task_queue.map(|q| q.name).unwrap_or_default(),
            history_size_bytes: state.history_size_bytes,
            first_run_id: attrs.first_execution_run_id.clone(),
            parent_namespace_id: attrs.parent_workflow_namespace_id.clone(),
            parent_execution: attrs.parent_workflow_execution.clone(),
            root_execution: attrs.root_workflow_execution.clone(),
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
        ..Default::default()
    }
}
