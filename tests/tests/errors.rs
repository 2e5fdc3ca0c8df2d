//! Errors carry the gRPC codes (and details) that Temporal's SDKs expect.

use anyhow::Result;
use prost::Message;
use sundial_proto::api::errordetails::v1::{
    NamespaceNotFoundFailure, WorkflowExecutionAlreadyStartedFailure,
};
use sundial_proto::google::rpc::Status as RpcStatus;
use sundial_proto::workflowservice::*;
use sundial_tests::worker::{NAMESPACE, commands, execution, rpc};
use sundial_tests::{TestServer, Worker};
use tonic::Code;

/// The single detail of `status`, decoded from its `google.rpc.Status`.
fn detail(status: &tonic::Status) -> prost_wkt_types::Any {
    let rpc_status = RpcStatus::decode(status.details()).expect("details are a google.rpc.Status");
    assert_eq!(rpc_status.code, status.code() as i32);
    assert_eq!(rpc_status.details.len(), 1, "{rpc_status:?}");
    rpc_status.details.into_iter().next().expect("one detail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_the_right_codes() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let mut client = worker.client.clone();

    // Unknown namespace.
    let mut req = worker.start_request("wf");
    req.namespace = "no-such-namespace".into();
    let status = client.start_workflow_execution(rpc(req)).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert!(status.message().contains("no-such-namespace"), "{status:?}");
    let any = detail(&status);
    assert!(
        any.type_url.ends_with("NamespaceNotFoundFailure"),
        "{}",
        any.type_url
    );
    assert_eq!(
        NamespaceNotFoundFailure::decode(any.value.as_slice())?.namespace,
        "no-such-namespace"
    );

    // Missing workflow id.
    let mut req = worker.start_request("");
    req.workflow_id.clear();
    let status = client.start_workflow_execution(rpc(req)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("WorkflowId"), "{status:?}");

    // Missing task queue, on start and on poll.
    let mut req = worker.start_request("wf");
    req.task_queue = None;
    let status = client.start_workflow_execution(rpc(req)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("TaskQueue"), "{status:?}");
    let req = PollWorkflowTaskQueueRequest {
        namespace: NAMESPACE.into(),
        ..Default::default()
    };
    let status = client.poll_workflow_task_queue(rpc(req)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Unknown workflow.
    let req = DescribeWorkflowExecutionRequest {
        namespace: NAMESPACE.into(),
        execution: Some(execution("never-started", "")),
    };
    let status = client
        .describe_workflow_execution(rpc(req))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{status:?}");

    // Bad and missing task tokens.
    for task_token in [vec![0xff; 8], vec![]] {
        let req = RespondWorkflowTaskCompletedRequest {
            task_token,
            namespace: NAMESPACE.into(),
            ..Default::default()
        };
        let status = client
            .respond_workflow_task_completed(rpc(req))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    let req = RespondActivityTaskCompletedRequest {
        task_token: vec![0xff; 8],
        namespace: NAMESPACE.into(),
        ..Default::default()
    };
    let status = client
        .respond_activity_task_completed(rpc(req))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    worker.start("exists").await?; // the server is still healthy
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_starts_are_refused_or_deduplicated() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let mut client = worker.client.clone();

    let first = worker.start_request("dup");
    let run_id = client
        .start_workflow_execution(rpc(first.clone()))
        .await?
        .into_inner()
        .run_id;

    // The same request id again: the same run, no error.
    let again = client
        .start_workflow_execution(rpc(first.clone()))
        .await?
        .into_inner();
    assert_eq!(again.run_id, run_id);

    // Another request id: AlreadyExists, with Temporal's detail naming the running run.
    let other = worker.start_request("dup");
    let status = client
        .start_workflow_execution(rpc(other))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");
    let any = detail(&status);
    assert!(
        any.type_url
            .ends_with("WorkflowExecutionAlreadyStartedFailure"),
        "{}",
        any.type_url
    );
    let failure = WorkflowExecutionAlreadyStartedFailure::decode(any.value.as_slice())?;
    assert_eq!(failure.run_id, run_id);
    assert_eq!(failure.start_request_id, first.request_id);

    assert_eq!(
        worker.history("dup").await?.len(),
        2,
        "one run, started once"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_task_completes_once() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    worker.start("twice").await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token.clone(), vec![])
        .await?;
    let err = worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"x")])
        .await
        .unwrap_err();
    let status = err.downcast_ref::<tonic::Status>().expect("a gRPC status");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(worker.event_types("twice").await?.len(), 4);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_info_and_unimplemented_rpcs() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut client = server.client().await?;

    let info = client
        .get_system_info(rpc(GetSystemInfoRequest {}))
        .await?
        .into_inner();
    let capabilities = info.capabilities.unwrap_or_default();
    assert!(capabilities.sdk_metadata);
    assert!(capabilities.signal_and_query_header);
    assert!(!info.server_version.is_empty());

    // Schedules are advertised as unsupported, and answer Unimplemented.
    assert!(!capabilities.supports_schedules);
    let req = CreateScheduleRequest {
        namespace: NAMESPACE.into(),
        schedule_id: "s".into(),
        request_id: "r".into(),
        ..Default::default()
    };
    let status = client.create_schedule(rpc(req)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    // Nexus is not advertised: a start asking for completion callbacks is refused, not started
    // without them.
    assert!(!capabilities.nexus);
    let mut start = Worker::new(client.clone()).start_request("with-callbacks");
    start.completion_callbacks = vec![Default::default()];
    let status = client
        .start_workflow_execution(rpc(start))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    // Workflow update is advertised, and checks its request as Temporal does.
    let ns = client
        .describe_namespace(rpc(DescribeNamespaceRequest {
            namespace: NAMESPACE.into(),
            ..Default::default()
        }))
        .await?
        .into_inner();
    let ns_capabilities = ns
        .namespace_info
        .and_then(|i| i.capabilities)
        .unwrap_or_default();
    assert!(ns_capabilities.sync_update && ns_capabilities.async_update);
    let req = UpdateWorkflowExecutionRequest {
        namespace: NAMESPACE.into(),
        workflow_execution: Some(execution("wf", "")),
        ..Default::default()
    };
    let status = client
        .update_workflow_execution(rpc(req))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), "Update meta is not set on request.");
    server.stop().await
}
