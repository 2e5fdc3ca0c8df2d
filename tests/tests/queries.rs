//! Queries that wait for a workflow task (Temporal's consistent queries): one sent while a task
//! is pending rides on that task (`PollWorkflowTaskQueueResponse.queries`) and is answered from
//! `RespondWorkflowTaskCompleted.query_results`; one left over when no task remains goes to the
//! worker as a legacy query task.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use sundial_proto::api::enums::v1::QueryResultType;
use sundial_proto::api::query::v1::{WorkflowQuery, WorkflowQueryResult};
use sundial_proto::workflowservice::{
    QueryWorkflowRequest, QueryWorkflowResponse, RespondQueryTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
};
use sundial_tests::worker::{NAMESPACE, execution, payloads, request, rpc};
use sundial_tests::{TestServer, Worker};

fn query_request(wf: &str) -> QueryWorkflowRequest {
    QueryWorkflowRequest {
        namespace: NAMESPACE.into(),
        execution: Some(execution(wf, "")),
        query: Some(WorkflowQuery {
            query_type: "state".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

type QueryCall =
    tokio::task::JoinHandle<Result<tonic::Response<QueryWorkflowResponse>, tonic::Status>>;

/// QueryWorkflow in the background, with a deadline of `secs`.
fn spawn_query(worker: &Worker, wf: &'static str, secs: u64) -> QueryCall {
    let mut client = worker.client.clone();
    tokio::spawn(async move {
        client
            .query_workflow(request(query_request(wf), Duration::from_secs(secs)))
            .await
    })
}

/// Answers a legacy query task.
async fn answer_legacy(worker: &mut Worker, task_token: Vec<u8>, answer: &[u8]) -> Result<()> {
    worker
        .client
        .respond_query_task_completed(rpc(RespondQueryTaskCompletedRequest {
            task_token,
            namespace: NAMESPACE.into(),
            completed_type: QueryResultType::Answered as i32,
            query_result: Some(payloads(answer)),
            ..Default::default()
        }))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_during_a_pending_task_rides_on_it() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let wf = "queried";
    worker.start(wf).await?;

    // Before the first task completes, the query waits for that task. (The pause gives the
    // query time to reach the shard before the poll; a second is ample on a loaded machine.)
    let query = spawn_query(&worker, wf, 20);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let task = worker.poll_workflow_task().await?;
    assert_eq!(task.queries.len(), 1, "the task carries the buffered query");
    let (query_id, carried) = task.queries.iter().next().unwrap();
    assert_eq!(carried.query_type, "state");
    let answer = WorkflowQueryResult {
        result_type: QueryResultType::Answered as i32,
        answer: Some(payloads(b"from the task")),
        ..Default::default()
    };
    worker
        .client
        .respond_workflow_task_completed(rpc(RespondWorkflowTaskCompletedRequest {
            task_token: task.task_token,
            namespace: NAMESPACE.into(),
            identity: worker.identity.clone(),
            query_results: HashMap::from([(query_id.clone(), answer)]),
            ..Default::default()
        }))
        .await?;
    let response = query.await??.into_inner();
    assert_eq!(response.query_result, Some(payloads(b"from the task")));

    // Idle run: a query goes straight to the worker as a legacy query task.
    let query = spawn_query(&worker, wf, 20);
    let legacy = worker.poll_workflow_task().await?;
    assert!(legacy.query.is_some() && legacy.queries.is_empty());
    answer_legacy(&mut worker, legacy.task_token, b"legacy").await?;
    assert_eq!(
        query.await??.into_inner().query_result,
        Some(payloads(b"legacy"))
    );

    // A query buffered while a task runs, which the completion does not answer, is unblocked
    // when no task remains and goes to the worker directly.
    worker.signal(wf, "go").await?;
    let task = worker.poll_workflow_task().await?;
    assert!(task.queries.is_empty());
    let query = spawn_query(&worker, wf, 20);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert!(!query.is_finished(), "the query waits for the running task");
    worker
        .complete_workflow_task(task.task_token, vec![])
        .await?;
    let legacy = worker.poll_workflow_task().await?;
    assert!(legacy.query.is_some());
    answer_legacy(&mut worker, legacy.task_token, b"after").await?;
    assert_eq!(
        query.await??.into_inner().query_result,
        Some(payloads(b"after"))
    );

    // One query at a time may wait in a run (history.MaxBufferedQueryCount). (The first
    // waits up to its deadline less the second the server keeps in hand.)
    worker.signal(wf, "again").await?;
    let first = spawn_query(&worker, wf, 4);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let second = worker
        .client
        .query_workflow(request(query_request(wf), Duration::from_secs(2)))
        .await;
    assert_eq!(
        second.unwrap_err().code(),
        tonic::Code::ResourceExhausted,
        "a second buffered query is refused"
    );
    assert_eq!(
        first.await?.unwrap_err().code(),
        tonic::Code::DeadlineExceeded
    );
    server.stop().await
}
