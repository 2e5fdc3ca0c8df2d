//! Building poll responses from what the history shard returned.

use prost::Message;
use sundial_actors::ops::WorkflowTaskStarted;
use sundial_actors::{History, Result};
use sundial_engine::api::{
    common::v1::WorkflowExecution,
    history::v1::History as HistoryMessage,
    taskqueue::v1::TaskQueue,
    workflowservice::v1::{PollActivityTaskQueueResponse, PollWorkflowTaskQueueResponse},
};
use sundial_engine::time::timestamp;
use sundial_engine::{ActivityInfo, MutableState, TaskToken};
use sundial_storage::ExecutionKey;

use crate::history::read_events;

fn execution(state: &MutableState) -> WorkflowExecution {
    WorkflowExecution {
        workflow_id: state.workflow_id.clone(),
        run_id: state.run_id.clone(),
    }
}

fn key(state: &MutableState) -> ExecutionKey {
    ExecutionKey {
        namespace_id: state.namespace_id.clone(),
        workflow_id: state.workflow_id.clone(),
        run_id: state.run_id.clone(),
    }
}

/// The poll response of a started workflow task: full history for a normal-queue poller,
/// the events since the last completed task for the sticky worker, plus transient events.
pub async fn workflow_task(
    history: &History,
    started: WorkflowTaskStarted,
    sticky_poll: bool,
) -> Result<PollWorkflowTaskQueueResponse> {
    let state = &started.state;
    let start = &started.start;
    let from = if sticky_poll {
        start.previous_started_event_id + 1
    } else {
        1
    };
    let transient = HistoryMessage {
        events: start.transient_events.clone(),
    };
    let (events, next_page_token) = page(
        history,
        &key(state),
        from,
        start.next_event_id,
        transient,
        super::HISTORY_PAGE_SIZE,
    )
    .await?;
    let token = TaskToken {
        namespace_id: state.namespace_id.clone(),
        workflow_id: state.workflow_id.clone(),
        run_id: state.run_id.clone(),
        scheduled_event_id: start.scheduled_event_id,
        attempt: start.attempt,
        started_event_id: start.started_event_id,
        started_time_ms: start.started_time_ms,
        ..Default::default()
    };
    let attrs = state.started.clone().unwrap_or_default();
    Ok(PollWorkflowTaskQueueResponse {
        task_token: token.encode_to_vec(),
        workflow_execution: Some(execution(state)),
        workflow_type: attrs.workflow_type.clone(),
        previous_started_event_id: start.previous_started_event_id,
        started_event_id: start.started_event_id,
        attempt: start.attempt,
        history: Some(HistoryMessage { events }),
        next_page_token,
        workflow_execution_task_queue: attrs.task_queue.clone().map(|q| TaskQueue {
            name: q.name,
            kind: 1,
            normal_name: String::new(),
        }),
        scheduled_time: Some(timestamp(start.scheduled_time_ms)),
        started_time: Some(timestamp(start.started_time_ms)),
        messages: start.messages.clone(),
        queries: started.queries.clone(),
        ..Default::default()
    })
}

/// One page of a workflow task's history: events `[from, min(end, from + size))`, and either a
/// token for the rest or, on the last page, the transient events appended.
pub async fn page(
    history: &History,
    key: &ExecutionKey,
    from: i64,
    end: i64,
    transient: HistoryMessage,
    size: i64,
) -> Result<(Vec<sundial_engine::api::history::v1::HistoryEvent>, Vec<u8>)> {
    let to = end.min(from + size);
    let mut events = read_events(history, key, from, to).await?;
    if to < end {
        let token = super::HistoryToken {
            run_id: key.run_id.clone(),
            next_event_id: to,
            end_event_id: end,
            transient: Some(transient),
        };
        return Ok((events, token.encode_to_vec()));
    }
    events.extend(transient.events);
    Ok((events, Vec::new()))
}

/// The poll response of a started activity.
pub fn activity_task(
    namespace: &str,
    state: &MutableState,
    ai: &ActivityInfo,
) -> PollActivityTaskQueueResponse {
    let scheduled = ai.scheduled.clone().unwrap_or_default();
    let token = TaskToken {
        namespace_id: state.namespace_id.clone(),
        workflow_id: state.workflow_id.clone(),
        run_id: state.run_id.clone(),
        scheduled_event_id: ai.scheduled_event_id,
        attempt: ai.attempt,
        activity_id: scheduled.activity_id.clone(),
        started_time_ms: ai.started_time_ms,
        ..Default::default()
    };
    let attrs = state.started.clone().unwrap_or_default();
    PollActivityTaskQueueResponse {
        task_token: token.encode_to_vec(),
        workflow_namespace: namespace.to_string(),
        workflow_type: attrs.workflow_type,
        workflow_execution: Some(execution(state)),
        activity_type: scheduled.activity_type,
        activity_id: scheduled.activity_id,
        header: scheduled.header,
        input: scheduled.input,
        heartbeat_details: ai.heartbeat_details.clone(),
        scheduled_time: Some(timestamp(ai.first_scheduled_time_ms)),
        current_attempt_scheduled_time: Some(timestamp(ai.scheduled_time_ms)),
        started_time: Some(timestamp(ai.started_time_ms)),
        attempt: ai.attempt,
        schedule_to_close_timeout: scheduled.schedule_to_close_timeout,
        start_to_close_timeout: scheduled.start_to_close_timeout,
        heartbeat_timeout: scheduled.heartbeat_timeout,
        retry_policy: scheduled.retry_policy,
        priority: scheduled.priority,
        ..Default::default()
    }
}
