//! Signals, cancel requests and termination through the raw client, with the event sequences
//! of Temporal's reference server.

use std::time::Duration;

use anyhow::Result;
use sundial_proto::api::enums::v1::{EventType, HistoryEventFilterType, WorkflowExecutionStatus};
use sundial_proto::workflowservice::{
    GetWorkflowExecutionHistoryRequest, RequestCancelWorkflowExecutionRequest,
    TerminateWorkflowExecutionRequest,
};
use sundial_tests::worker::{NAMESPACE, commands, event_types, execution, request, rpc, secs};
use sundial_tests::{TestServer, Worker};

use EventType::*;

/// Starts `wf` and completes its first workflow task with `commands`.
async fn start_and_complete_first_task(
    worker: &mut Worker,
    wf: &str,
    commands: Vec<sundial_proto::api::command::v1::Command>,
) -> Result<()> {
    worker.start(wf).await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, commands)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_schedule_workflow_tasks_and_buffer_while_one_runs() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let wf = "signalled";
    start_and_complete_first_task(&mut worker, wf, vec![]).await?;

    // An idle workflow: the signal is written with a new workflow task.
    worker.signal(wf, "first").await?;
    assert_eq!(
        worker.event_types(wf).await?[4..],
        [WorkflowExecutionSignaled, WorkflowTaskScheduled]
    );
    let task = worker.poll_workflow_task().await?;
    let history = task.history.clone().unwrap_or_default().events;
    let signalled = &history[4];
    assert_eq!(signalled.event_type, WorkflowExecutionSignaled as i32);
    match &signalled.attributes {
        Some(sundial_proto::api::history::v1::history_event::Attributes::WorkflowExecutionSignaledEventAttributes(a)) => {
            assert_eq!(a.signal_name, "first");
        }
        other => panic!("signalled event has attributes {other:?}"),
    }

    // A signal while the task is started is buffered until the task completes.
    worker.signal(wf, "second").await?;
    assert_eq!(
        worker.event_types(wf).await?.last(),
        Some(&WorkflowTaskStarted),
        "a signal during a started workflow task must be buffered"
    );
    worker
        .complete_workflow_task(task.task_token, vec![])
        .await?;
    assert_eq!(
        worker.event_types(wf).await?[7..],
        [
            WorkflowTaskCompleted,
            WorkflowExecutionSignaled,
            WorkflowTaskScheduled
        ]
    );

    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"ok")])
        .await?;
    assert_eq!(
        worker.event_types(wf).await?,
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            WorkflowExecutionSignaled,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            WorkflowExecutionSignaled,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            WorkflowExecutionCompleted,
        ]
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_then_workflow_cancels() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let wf = "cancelled";
    start_and_complete_first_task(&mut worker, wf, vec![commands::start_timer("t", secs(60))])
        .await?;

    let req = RequestCancelWorkflowExecutionRequest {
        namespace: NAMESPACE.into(),
        workflow_execution: Some(execution(wf, "")),
        identity: "canceller".into(),
        request_id: uuid::Uuid::new_v4().to_string(),
        reason: "test".into(),
        ..Default::default()
    };
    worker
        .client
        .request_cancel_workflow_execution(rpc(req))
        .await?;
    assert_eq!(
        worker.event_types(wf).await?[5..],
        [WorkflowExecutionCancelRequested, WorkflowTaskScheduled]
    );

    let task = worker.poll_workflow_task().await?;
    assert_eq!(
        event_types(&task.history.clone().unwrap_or_default().events)[5..],
        [
            WorkflowExecutionCancelRequested,
            WorkflowTaskScheduled,
            WorkflowTaskStarted
        ]
    );
    worker
        .complete_workflow_task(task.task_token, vec![commands::cancel_workflow()])
        .await?;
    assert_eq!(
        worker.event_types(wf).await?,
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            TimerStarted,
            WorkflowExecutionCancelRequested,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            WorkflowExecutionCanceled,
        ]
    );
    let info = worker
        .describe(wf)
        .await?
        .workflow_execution_info
        .unwrap_or_default();
    assert_eq!(info.status, WorkflowExecutionStatus::Canceled as i32);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_closes_the_run_and_wakes_close_event_pollers() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let wf = "terminated";
    start_and_complete_first_task(&mut worker, wf, vec![commands::start_timer("t", secs(60))])
        .await?;

    // A long poll for the close event, waiting while the run is open.
    let mut poller = worker.client.clone();
    let waiting = tokio::spawn(async move {
        let req = GetWorkflowExecutionHistoryRequest {
            namespace: NAMESPACE.into(),
            execution: Some(execution(wf, "")),
            wait_new_event: true,
            history_event_filter_type: HistoryEventFilterType::CloseEvent as i32,
            ..Default::default()
        };
        poller
            .get_workflow_execution_history(request(req, Duration::from_secs(15)))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let req = TerminateWorkflowExecutionRequest {
        namespace: NAMESPACE.into(),
        workflow_execution: Some(execution(wf, "")),
        reason: "enough".into(),
        identity: "terminator".into(),
        ..Default::default()
    };
    worker.client.terminate_workflow_execution(rpc(req)).await?;
    let events = worker.history(wf).await?;
    assert_eq!(
        event_types(&events),
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            TimerStarted,
            WorkflowExecutionTerminated,
        ]
    );
    match &events[5].attributes {
        Some(sundial_proto::api::history::v1::history_event::Attributes::WorkflowExecutionTerminatedEventAttributes(a)) => {
            assert_eq!(a.reason, "enough");
        }
        other => panic!("terminated event has attributes {other:?}"),
    }
    let info = worker
        .describe(wf)
        .await?
        .workflow_execution_info
        .unwrap_or_default();
    assert_eq!(info.status, WorkflowExecutionStatus::Terminated as i32);

    let close = tokio::time::timeout(Duration::from_secs(15), waiting).await???;
    assert_eq!(
        event_types(&close.into_inner().history.unwrap_or_default().events),
        [WorkflowExecutionTerminated]
    );

    // A closed run takes no more signals.
    let err = worker.signal(wf, "late").await.unwrap_err();
    let status = err.downcast_ref::<tonic::Status>().expect("a gRPC status");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    server.stop().await
}
