//! A whole workflow life cycle (activity, timer, completion) on both stores.

use std::time::Duration;

use anyhow::{Result, ensure};
use sundial_proto::api::enums::v1::{EventType, HistoryEventFilterType, WorkflowExecutionStatus};
use sundial_proto::api::history::v1::HistoryEvent;
use sundial_proto::workflowservice::GetWorkflowExecutionHistoryRequest;
use sundial_tests::worker::{NAMESPACE, commands, event_types, execution, request, secs};
use sundial_tests::{TestServer, Worker};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_timer_complete_on_memory_store() -> Result<()> {
    let server = TestServer::memory().await?;
    run_lifecycle(Worker::new(server.client().await?)).await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_timer_complete_on_sqlite_store() -> Result<()> {
    let server = TestServer::sqlite().await?;
    run_lifecycle(Worker::new(server.client().await?)).await?;
    server.stop().await
}

async fn run_lifecycle(mut worker: Worker) -> Result<()> {
    use EventType::*;
    let wf = "lifecycle";
    let run_id = worker.start(wf).await?;

    // First workflow task: schedule an activity.
    let task = worker.poll_workflow_task().await?;
    let polled = task.workflow_execution.clone().unwrap_or_default();
    assert_eq!(
        (polled.workflow_id.as_str(), polled.run_id.as_str()),
        (wf, run_id.as_str())
    );
    assert_eq!(
        task.workflow_type.as_ref().map(|t| t.name.as_str()),
        Some("test-workflow")
    );
    assert_eq!(task.started_event_id, 3);
    assert_eq!(task.previous_started_event_id, 0);
    let history = task.history.clone().unwrap_or_default().events;
    assert_eq!(
        event_types(&history),
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted
        ]
    );
    let queue = worker.task_queue.clone();
    worker
        .complete_workflow_task(
            task.task_token,
            vec![commands::schedule_activity("a1", &queue, secs(10))],
        )
        .await?;

    // The activity.
    let activity = worker.poll_activity_task().await?;
    assert_eq!(activity.activity_id, "a1");
    assert_eq!(
        activity.activity_type.as_ref().map(|t| t.name.as_str()),
        Some("test-activity")
    );
    assert_eq!(activity.attempt, 1);
    worker
        .complete_activity_task(activity.task_token, b"activity result")
        .await?;

    // Second workflow task: sees the activity's result, starts a 1 s timer.
    let task = worker.poll_workflow_task().await?;
    let history = task.history.clone().unwrap_or_default().events;
    assert_eq!(
        event_types(&history)[4..],
        [
            ActivityTaskScheduled,
            ActivityTaskStarted,
            ActivityTaskCompleted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted
        ]
    );
    assert_eq!(task.previous_started_event_id, 3);
    worker
        .complete_workflow_task(task.task_token, vec![commands::start_timer("t1", secs(1))])
        .await?;

    // Third workflow task: only after the timer fired.
    let task = worker.poll_workflow_task().await?;
    let history = task.history.clone().unwrap_or_default().events;
    assert_eq!(
        event_types(&history)[10..],
        [
            TimerStarted,
            TimerFired,
            WorkflowTaskScheduled,
            WorkflowTaskStarted
        ]
    );
    let fired_after = millis(&history[11]) - millis(&history[10]);
    ensure!(
        fired_after >= 1000,
        "TimerFired is {fired_after} ms after TimerStarted, before the 1 s timer was due"
    );
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"done")])
        .await?;

    let events = worker.history(wf).await?;
    assert_eq!(
        event_types(&events),
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            ActivityTaskScheduled,
            ActivityTaskStarted,
            ActivityTaskCompleted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            TimerStarted,
            TimerFired,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            WorkflowExecutionCompleted,
        ]
    );
    let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, (1..=16).collect::<Vec<_>>());

    let description = worker.describe(wf).await?;
    let info = description.workflow_execution_info.unwrap_or_default();
    assert_eq!(info.status, WorkflowExecutionStatus::Completed as i32);
    assert_eq!(info.history_length, 16);
    assert_eq!(info.execution.unwrap_or_default().run_id, run_id);
    assert!(info.close_time.is_some());

    // Long poll for the close event: answers at once with just that event.
    let req = GetWorkflowExecutionHistoryRequest {
        namespace: NAMESPACE.into(),
        execution: Some(execution(wf, &run_id)),
        wait_new_event: true,
        history_event_filter_type: HistoryEventFilterType::CloseEvent as i32,
        ..Default::default()
    };
    let close = worker
        .client
        .get_workflow_execution_history(request(req, Duration::from_secs(10)))
        .await?
        .into_inner();
    let close_events = close.history.unwrap_or_default().events;
    assert_eq!(event_types(&close_events), [WorkflowExecutionCompleted]);
    assert_eq!(close_events[0].event_id, 16);
    assert!(close.next_page_token.is_empty());
    Ok(())
}

/// The event's time, unix millis.
fn millis(event: &HistoryEvent) -> i64 {
    let t = event.event_time.unwrap_or_default();
    t.seconds * 1000 + i64::from(t.nanos) / 1_000_000
}
