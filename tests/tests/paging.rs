//! Histories longer than a page are read page by page.

use anyhow::Result;
use sundial_proto::api::enums::v1::EventType;
use sundial_proto::workflowservice::GetWorkflowExecutionHistoryRequest;
use sundial_tests::worker::{NAMESPACE, event_types, execution, rpc};
use sundial_tests::{TestServer, Worker};

const SIGNALS: i64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_through_more_than_256_events() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let wf = "long-history";
    let run_id = worker.start(wf).await?;
    // The first workflow task is never polled: signals while it is only scheduled are
    // appended directly, without new workflow tasks.
    for i in 0..SIGNALS {
        worker.signal(wf, &format!("s{i}")).await?;
    }
    let total = SIGNALS + 2;

    let mut client = worker.client.clone();
    let mut events = Vec::new();
    let mut page_sizes = Vec::new();
    let mut next_page_token = Vec::new();
    loop {
        let req = GetWorkflowExecutionHistoryRequest {
            namespace: NAMESPACE.into(),
            execution: Some(execution(wf, &run_id)),
            maximum_page_size: 100,
            next_page_token,
            ..Default::default()
        };
        let page = client
            .get_workflow_execution_history(rpc(req))
            .await?
            .into_inner();
        let page_events = page.history.unwrap_or_default().events;
        page_sizes.push(page_events.len());
        events.extend(page_events);
        assert!(page_sizes.len() <= 10, "too many pages: {page_sizes:?}");
        if page.next_page_token.is_empty() {
            break;
        }
        next_page_token = page.next_page_token;
    }
    assert_eq!(page_sizes, [100, 100, 100, 2]);
    let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, (1..=total).collect::<Vec<_>>(), "ids are contiguous");
    let types = event_types(&events);
    assert_eq!(
        types[..2],
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled
        ]
    );
    assert!(
        types[2..]
            .iter()
            .all(|t| *t == EventType::WorkflowExecutionSignaled)
    );

    // Without a page size the server pages at 256.
    let req = GetWorkflowExecutionHistoryRequest {
        namespace: NAMESPACE.into(),
        execution: Some(execution(wf, &run_id)),
        ..Default::default()
    };
    let first = client
        .get_workflow_execution_history(rpc(req))
        .await?
        .into_inner();
    assert_eq!(first.history.unwrap_or_default().events.len(), 256);
    assert!(!first.next_page_token.is_empty());

    // The helper's paged read agrees.
    assert_eq!(worker.history(wf).await?.len() as i64, total);

    // A workflow task's history pages too: the poll response carries the first page and a
    // token; the rest, up to the task's WorkflowTaskStarted, comes from
    // GetWorkflowExecutionHistory.
    let task = worker.poll_workflow_task().await?;
    assert_eq!(task.started_event_id, total + 1);
    let mut events = task.history.unwrap_or_default().events;
    assert_eq!(events.len(), 256);
    let mut next_page_token = task.next_page_token;
    for _ in 0..10 {
        if next_page_token.is_empty() {
            break;
        }
        let req = GetWorkflowExecutionHistoryRequest {
            namespace: NAMESPACE.into(),
            execution: Some(execution(wf, &run_id)),
            next_page_token,
            ..Default::default()
        };
        let page = client
            .get_workflow_execution_history(rpc(req))
            .await?
            .into_inner();
        events.extend(page.history.unwrap_or_default().events);
        next_page_token = page.next_page_token;
    }
    assert!(
        next_page_token.is_empty(),
        "the task's history does not end"
    );
    let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, (1..=total + 1).collect::<Vec<_>>());
    assert_eq!(
        event_types(&events).last(),
        Some(&EventType::WorkflowTaskStarted)
    );
    server.stop().await
}
