//! The public frontend: Temporal's `WorkflowService`, validating requests and routing them to
//! history shards and matching partitions through the node's handles.

mod batch;
mod describe;
mod history_rpc;
mod namespaces;
mod polls;
mod query;
mod reset;
mod responses;
mod start;
mod task_queue;
mod update;
mod validate;
mod visibility;

use describe::describe;
use validate::*;

use std::time::Duration;

use prost::Message;
use sundial_actors::matching::{ACTIVITY_QUEUE, QueryTask, WORKFLOW_QUEUE};
use sundial_actors::ops::{
    ActivityReport, ActivityTarget, FromResponse, Request as HistoryRequest, RunRef, StartWorkflow,
    WorkflowTaskStarted,
};
use sundial_actors::{Error, Matching, Node};
use sundial_engine::api::{
    common::v1::WorkflowExecution,
    enums::v1::{
        EventType, HistoryEventFilterType, PendingActivityState, PendingWorkflowTaskState,
        QueryResultType, TaskQueueKind, WorkflowExecutionStatus, WorkflowTaskFailedCause,
    },
    history::v1::{History as HistoryMessage, WorkflowExecutionStartedEventAttributes},
    query::v1::QueryRejected,
    taskqueue::v1::TaskQueue,
    workflow::v1::{
        PendingActivityInfo, PendingWorkflowTaskInfo, WorkflowExecutionConfig,
        WorkflowExecutionInfo,
    },
};
use sundial_engine::time::{duration_ms, timestamp, validate_and_cap};
use sundial_engine::{MutableState, Signal, StartParams, TaskToken};
use sundial_proto::workflowservice::{workflow_service_server::WorkflowService, *};
use sundial_storage::{ClusterMetadataRow, ExecutionKey};
use tonic::{Request, Response, Status};

use crate::history::{read_batches_before, read_events};
use crate::status::{invalid, not_found, to_status};

pub use namespaces::ensure as ensure_namespace;

/// Longest a poll waits before answering empty.
const MAX_POLL: Duration = Duration::from_secs(60);
/// Longest a history long poll waits.
const MAX_HISTORY_WAIT: Duration = Duration::from_secs(20);
/// The Temporal server version whose API Sundial serves.
const SERVER_VERSION: &str = "1.32.0";
/// The cluster's name: Temporal's single-cluster default.
const CLUSTER_NAME: &str = "active";

/// Events per history page.
const HISTORY_PAGE_SIZE: i64 = 256;

pub use batch::{BATCH_DIVISION, BATCH_TASK_QUEUE, BatchProgress, STATS_MEMO};

/// The frontend service.
#[derive(Clone)]
pub struct Frontend {
    node: Node,
    /// Tells the node's batch worker a namespace has a job to run (see `crate::batcher`).
    batch_worker: Option<tokio::sync::mpsc::UnboundedSender<String>>,
}

impl Frontend {
    /// A frontend over a node.
    pub fn new(node: Node) -> Self {
        Self {
            node,
            batch_worker: None,
        }
    }

    /// This frontend, telling `worker` of the namespaces batch jobs start in.
    pub fn with_batch_worker(self, worker: tokio::sync::mpsc::UnboundedSender<String>) -> Self {
        Self {
            batch_worker: Some(worker),
            ..self
        }
    }

    /// The node this frontend serves.
    pub fn node(&self) -> &Node {
        &self.node
    }

    fn wake_batch_worker(&self, namespace: &str) {
        if let Some(worker) = &self.batch_worker {
            // The worker ends only with the process.
            let _ = worker.send(namespace.to_string());
        }
    }

    async fn namespace_id(&self, name: &str) -> Result<String, Status> {
        if name.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        crate::telemetry::note_namespace(name);
        Ok(self.node.namespaces.get(name).await.map_err(to_status)?.id)
    }

    async fn call<T: FromResponse>(
        &self,
        namespace_id: &str,
        workflow_id: &str,
        request: HistoryRequest,
    ) -> Result<T, Status> {
        self.node
            .history
            .call(namespace_id, workflow_id, request)
            .await
            .map_err(to_status)
    }

    async fn describe_state(&self, run: RunRef) -> Result<MutableState, Status> {
        let (ns, wf) = (run.namespace_id.clone(), run.workflow_id.clone());
        self.call(&ns, &wf, HistoryRequest::Describe(run)).await
    }
}

#[tonic::async_trait]
impl WorkflowService for Frontend {
    async fn get_system_info(
        &self,
        _: Request<GetSystemInfoRequest>,
    ) -> Result<Response<GetSystemInfoResponse>, Status> {
        Ok(Response::new(GetSystemInfoResponse {
            server_version: SERVER_VERSION.into(),
            capabilities: Some(get_system_info_response::Capabilities {
                signal_and_query_header: true,
                internal_error_differentiation: true,
                activity_failure_include_heartbeat: true,
                supports_schedules: false,
                encoded_failure_attributes: true,
                // Build ids are recorded on task events (as Temporal does for an unversioned
                // worker); the versioning APIs themselves answer Unimplemented.
                build_id_based_versioning: true,
                upsert_memo: true,
                eager_workflow_start: true,
                sdk_metadata: true,
                count_group_by_execution_status: true,
                nexus: false,
                ..Default::default()
            }),
        }))
    }

    async fn get_cluster_info(
        &self,
        _: Request<GetClusterInfoRequest>,
    ) -> Result<Response<GetClusterInfoResponse>, Status> {
        let store = &self.node.history.store;
        // The row exists once a server has started on the store; the first call of a server
        // started without that check records it.
        let proposed = ClusterMetadataRow {
            cluster_name: CLUSTER_NAME.into(),
            cluster_id: uuid::Uuid::new_v4().to_string(),
            history_shard_count: self.node.history.num_shards(),
        };
        let cluster = store
            .cluster_metadata(proposed)
            .await
            .map_err(|e| to_status(e.into()))?;
        // The client versions Temporal 1.32 declares it supports (Nexus left out: Sundial does
        // not serve it).
        let supported_clients = [
            ("temporal-cli", "<2.0.0"),
            ("temporal-go", "<2.0.0"),
            ("temporal-java", "<2.0.0"),
            ("temporal-php", "<2.0.0"),
            ("temporal-server", "<2.0.0"),
            ("temporal-typescript", "<2.0.0"),
            ("temporal-ui", "<3.0.0"),
        ]
        .into_iter()
        .map(|(client, versions)| (client.to_string(), versions.to_string()))
        .collect();
        Ok(Response::new(GetClusterInfoResponse {
            supported_clients,
            server_version: SERVER_VERSION.into(),
            cluster_id: cluster.cluster_id,
            version_info: None,
            cluster_name: cluster.cluster_name,
            history_shard_count: cluster.history_shard_count,
            persistence_store: store.persistence_store().into(),
            // Visibility records live in the same store, written in the same transactions.
            visibility_store: store.persistence_store().into(),
            initial_failover_version: 1,
            failover_version_increment: 10,
        }))
    }

    async fn list_workflow_executions(
        &self,
        request: Request<ListWorkflowExecutionsRequest>,
    ) -> Result<Response<ListWorkflowExecutionsResponse>, Status> {
        self.list_runs(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn scan_workflow_executions(
        &self,
        request: Request<ScanWorkflowExecutionsRequest>,
    ) -> Result<Response<ScanWorkflowExecutionsResponse>, Status> {
        self.scan_runs(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_open_workflow_executions(
        &self,
        request: Request<ListOpenWorkflowExecutionsRequest>,
    ) -> Result<Response<ListOpenWorkflowExecutionsResponse>, Status> {
        self.list_open_runs(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_closed_workflow_executions(
        &self,
        request: Request<ListClosedWorkflowExecutionsRequest>,
    ) -> Result<Response<ListClosedWorkflowExecutionsResponse>, Status> {
        self.list_closed_runs(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn count_workflow_executions(
        &self,
        request: Request<CountWorkflowExecutionsRequest>,
    ) -> Result<Response<CountWorkflowExecutionsResponse>, Status> {
        self.count_runs(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn start_batch_operation(
        &self,
        request: Request<StartBatchOperationRequest>,
    ) -> Result<Response<StartBatchOperationResponse>, Status> {
        self.start_batch(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn describe_batch_operation(
        &self,
        request: Request<DescribeBatchOperationRequest>,
    ) -> Result<Response<DescribeBatchOperationResponse>, Status> {
        self.describe_batch(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn list_batch_operations(
        &self,
        request: Request<ListBatchOperationsRequest>,
    ) -> Result<Response<ListBatchOperationsResponse>, Status> {
        self.list_batches(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn stop_batch_operation(
        &self,
        request: Request<StopBatchOperationRequest>,
    ) -> Result<Response<StopBatchOperationResponse>, Status> {
        self.stop_batch(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_search_attributes(
        &self,
        _: Request<GetSearchAttributesRequest>,
    ) -> Result<Response<GetSearchAttributesResponse>, Status> {
        Ok(Response::new(GetSearchAttributesResponse {
            keys: visibility::search_attribute_keys(),
        }))
    }

    async fn register_namespace(
        &self,
        request: Request<RegisterNamespaceRequest>,
    ) -> Result<Response<RegisterNamespaceResponse>, Status> {
        namespaces::register(&self.node.namespaces, request.into_inner()).await?;
        // The shards learn its retention before this answers.
        let refreshed = self.node.history.refresh_namespaces().await;
        refreshed.map_err(to_status)?;
        Ok(Response::new(RegisterNamespaceResponse {}))
    }

    async fn describe_namespace(
        &self,
        request: Request<DescribeNamespaceRequest>,
    ) -> Result<Response<DescribeNamespaceResponse>, Status> {
        let req = request.into_inner();
        let ns = if !req.namespace.is_empty() {
            self.node
                .namespaces
                .get(&req.namespace)
                .await
                .map_err(to_status)?
        } else if !req.id.is_empty() {
            let all = self.node.namespaces.list().await.map_err(to_status)?;
            all.into_iter()
                .find(|n| n.id == req.id)
                .ok_or_else(|| to_status(Error::NamespaceNotFound(req.id.clone())))?
        } else {
            return Err(invalid("Namespace is not set on request."));
        };
        Ok(Response::new(ns.description))
    }

    async fn list_namespaces(
        &self,
        _: Request<ListNamespacesRequest>,
    ) -> Result<Response<ListNamespacesResponse>, Status> {
        let all = self.node.namespaces.list().await.map_err(to_status)?;
        Ok(Response::new(ListNamespacesResponse {
            namespaces: all.into_iter().map(|n| n.description).collect(),
            next_page_token: Vec::new(),
        }))
    }

    async fn update_namespace(
        &self,
        request: Request<UpdateNamespaceRequest>,
    ) -> Result<Response<UpdateNamespaceResponse>, Status> {
        let d = namespaces::update(&self.node.namespaces, request.into_inner()).await?;
        let refreshed = self.node.history.refresh_namespaces().await;
        refreshed.map_err(to_status)?;
        Ok(Response::new(UpdateNamespaceResponse {
            namespace_info: d.namespace_info,
            config: d.config,
            replication_config: d.replication_config,
            failover_version: d.failover_version,
            is_global_namespace: d.is_global_namespace,
        }))
    }

    async fn start_workflow_execution(
        &self,
        request: Request<StartWorkflowExecutionRequest>,
    ) -> Result<Response<StartWorkflowExecutionResponse>, Status> {
        self.start_workflow_execution_impl(request).await
    }

    async fn signal_with_start_workflow_execution(
        &self,
        request: Request<SignalWithStartWorkflowExecutionRequest>,
    ) -> Result<Response<SignalWithStartWorkflowExecutionResponse>, Status> {
        self.signal_with_start_workflow_execution_impl(request)
            .await
    }

    async fn poll_workflow_task_queue(
        &self,
        request: Request<PollWorkflowTaskQueueRequest>,
    ) -> Result<Response<PollWorkflowTaskQueueResponse>, Status> {
        self.poll_workflow_task_queue_impl(request).await
    }

    async fn respond_workflow_task_completed(
        &self,
        request: Request<RespondWorkflowTaskCompletedRequest>,
    ) -> Result<Response<RespondWorkflowTaskCompletedResponse>, Status> {
        self.respond_workflow_task_completed_impl(request).await
    }

    async fn respond_workflow_task_failed(
        &self,
        request: Request<RespondWorkflowTaskFailedRequest>,
    ) -> Result<Response<RespondWorkflowTaskFailedResponse>, Status> {
        let req = request.into_inner();
        let token = decode_token(&req.task_token)?;
        check_length_within(&req.identity, "Identity", self.max_id_length())?;
        let run = run_of(&token);
        let cause = WorkflowTaskFailedCause::try_from(req.cause)
            .unwrap_or(WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure);
        self.call::<()>(
            &token.namespace_id,
            &token.workflow_id,
            HistoryRequest::FailWorkflowTask {
                run,
                scheduled_event_id: token.scheduled_event_id,
                attempt: token.attempt,
                started: (token.started_event_id, token.started_time_ms),
                cause,
                failure: req.failure,
                identity: req.identity,
            },
        )
        .await?;
        Ok(Response::new(RespondWorkflowTaskFailedResponse {}))
    }

    async fn poll_activity_task_queue(
        &self,
        request: Request<PollActivityTaskQueueRequest>,
    ) -> Result<Response<PollActivityTaskQueueResponse>, Status> {
        self.poll_activity_task_queue_impl(request).await
    }

    async fn record_activity_task_heartbeat(
        &self,
        request: Request<RecordActivityTaskHeartbeatRequest>,
    ) -> Result<Response<RecordActivityTaskHeartbeatResponse>, Status> {
        let req = request.into_inner();
        let cancel_requested = self
            .report_by_token(
                &req.task_token,
                ActivityReport::Heartbeat(req.details),
                req.identity,
            )
            .await?
            .cancel_requested;
        Ok(Response::new(RecordActivityTaskHeartbeatResponse {
            cancel_requested,
            ..Default::default()
        }))
    }

    async fn record_activity_task_heartbeat_by_id(
        &self,
        request: Request<RecordActivityTaskHeartbeatByIdRequest>,
    ) -> Result<Response<RecordActivityTaskHeartbeatByIdResponse>, Status> {
        let req = request.into_inner();
        let cancel_requested = self
            .report_by_id(
                &req.namespace,
                &req.workflow_id,
                &req.run_id,
                &req.activity_id,
                ActivityReport::Heartbeat(req.details),
                req.identity,
            )
            .await?
            .cancel_requested;
        Ok(Response::new(RecordActivityTaskHeartbeatByIdResponse {
            cancel_requested,
            ..Default::default()
        }))
    }

    async fn respond_activity_task_completed(
        &self,
        request: Request<RespondActivityTaskCompletedRequest>,
    ) -> Result<Response<RespondActivityTaskCompletedResponse>, Status> {
        let req = request.into_inner();
        self.report_by_token(
            &req.task_token,
            ActivityReport::Completed(req.result),
            req.identity,
        )
        .await?;
        Ok(Response::new(RespondActivityTaskCompletedResponse {}))
    }

    async fn respond_activity_task_completed_by_id(
        &self,
        request: Request<RespondActivityTaskCompletedByIdRequest>,
    ) -> Result<Response<RespondActivityTaskCompletedByIdResponse>, Status> {
        let req = request.into_inner();
        self.report_by_id(
            &req.namespace,
            &req.workflow_id,
            &req.run_id,
            &req.activity_id,
            ActivityReport::Completed(req.result),
            req.identity,
        )
        .await?;
        Ok(Response::new(RespondActivityTaskCompletedByIdResponse {}))
    }

    async fn respond_activity_task_failed(
        &self,
        request: Request<RespondActivityTaskFailedRequest>,
    ) -> Result<Response<RespondActivityTaskFailedResponse>, Status> {
        let req = request.into_inner();
        let reported = self
            .report_by_token(
                &req.task_token,
                ActivityReport::Failed(req.failure, req.last_heartbeat_details),
                req.identity,
            )
            .await?;
        Ok(Response::new(RespondActivityTaskFailedResponse {
            failures: reported.failures,
        }))
    }

    async fn respond_activity_task_failed_by_id(
        &self,
        request: Request<RespondActivityTaskFailedByIdRequest>,
    ) -> Result<Response<RespondActivityTaskFailedByIdResponse>, Status> {
        let req = request.into_inner();
        let reported = self
            .report_by_id(
                &req.namespace,
                &req.workflow_id,
                &req.run_id,
                &req.activity_id,
                ActivityReport::Failed(req.failure, req.last_heartbeat_details),
                req.identity,
            )
            .await?;
        Ok(Response::new(RespondActivityTaskFailedByIdResponse {
            failures: reported.failures,
        }))
    }

    async fn respond_activity_task_canceled(
        &self,
        request: Request<RespondActivityTaskCanceledRequest>,
    ) -> Result<Response<RespondActivityTaskCanceledResponse>, Status> {
        let req = request.into_inner();
        self.report_by_token(
            &req.task_token,
            ActivityReport::Canceled(req.details),
            req.identity,
        )
        .await?;
        Ok(Response::new(RespondActivityTaskCanceledResponse {}))
    }

    async fn respond_activity_task_canceled_by_id(
        &self,
        request: Request<RespondActivityTaskCanceledByIdRequest>,
    ) -> Result<Response<RespondActivityTaskCanceledByIdResponse>, Status> {
        let req = request.into_inner();
        self.report_by_id(
            &req.namespace,
            &req.workflow_id,
            &req.run_id,
            &req.activity_id,
            ActivityReport::Canceled(req.details),
            req.identity,
        )
        .await?;
        Ok(Response::new(RespondActivityTaskCanceledByIdResponse {}))
    }

    async fn signal_workflow_execution(
        &self,
        request: Request<SignalWorkflowExecutionRequest>,
    ) -> Result<Response<SignalWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = self.execution_ref(&ns, &req.workflow_execution)?;
        self.check_id(&req.signal_name, "SignalName")?;
        check_length_within(&req.request_id, "RequestId", self.max_id_length())?;
        check_blob(req.input.as_ref(), &self.node.history.limits())?;
        let signal = Signal {
            name: req.signal_name,
            input: req.input,
            header: req.header,
            identity: req.identity,
            request_id: req.request_id,
            skip_generate_workflow_task: false,
            external_workflow_execution: None,
        };
        let wf = run.workflow_id.clone();
        self.call::<()>(&ns, &wf, HistoryRequest::Signal(run, signal))
            .await?;
        Ok(Response::new(SignalWorkflowExecutionResponse::default()))
    }

    async fn request_cancel_workflow_execution(
        &self,
        request: Request<RequestCancelWorkflowExecutionRequest>,
    ) -> Result<Response<RequestCancelWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = self.execution_ref(&ns, &req.workflow_execution)?;
        let wf = run.workflow_id.clone();
        self.call::<()>(
            &ns,
            &wf,
            HistoryRequest::RequestCancel {
                run,
                cause: req.reason,
                identity: req.identity,
            },
        )
        .await?;
        Ok(Response::new(RequestCancelWorkflowExecutionResponse {}))
    }

    async fn terminate_workflow_execution(
        &self,
        request: Request<TerminateWorkflowExecutionRequest>,
    ) -> Result<Response<TerminateWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = self.execution_ref(&ns, &req.workflow_execution)?;
        let wf = run.workflow_id.clone();
        // Temporal's frontend gives a termination without a reason this one.
        let reason = if req.reason.is_empty() {
            "terminated by user via frontend".to_string()
        } else {
            req.reason
        };
        self.call::<()>(
            &ns,
            &wf,
            HistoryRequest::Terminate {
                run,
                reason,
                details: req.details,
                identity: req.identity,
            },
        )
        .await?;
        Ok(Response::new(TerminateWorkflowExecutionResponse {}))
    }

    async fn get_workflow_execution_history(
        &self,
        request: Request<GetWorkflowExecutionHistoryRequest>,
    ) -> Result<Response<GetWorkflowExecutionHistoryResponse>, Status> {
        self.get_workflow_execution_history_impl(request).await
    }

    async fn get_workflow_execution_history_reverse(
        &self,
        request: Request<GetWorkflowExecutionHistoryReverseRequest>,
    ) -> Result<Response<GetWorkflowExecutionHistoryReverseResponse>, Status> {
        self.get_workflow_execution_history_reverse_impl(request)
            .await
    }

    async fn describe_workflow_execution(
        &self,
        request: Request<DescribeWorkflowExecutionRequest>,
    ) -> Result<Response<DescribeWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = self.execution_ref(&ns, &req.execution)?;
        let state = self.describe_state(run).await?;
        Ok(Response::new(describe(&state)))
    }

    async fn query_workflow(
        &self,
        request: Request<QueryWorkflowRequest>,
    ) -> Result<Response<QueryWorkflowResponse>, Status> {
        self.query_workflow_impl(request).await
    }

    async fn respond_query_task_completed(
        &self,
        request: Request<RespondQueryTaskCompletedRequest>,
    ) -> Result<Response<RespondQueryTaskCompletedResponse>, Status> {
        let req = request.into_inner();
        let token = decode_token(&req.task_token)?;
        if !token.query {
            return Err(invalid("Task token is not a query task token."));
        }
        let answered = self
            .node
            .matching
            .respond_query_task_completed(token.activity_id.clone(), req);
        if !answered.await.map_err(to_status)? {
            return Err(not_found("query not found or already answered"));
        }
        Ok(Response::new(RespondQueryTaskCompletedResponse {}))
    }

    async fn describe_task_queue(
        &self,
        request: Request<DescribeTaskQueueRequest>,
    ) -> Result<Response<DescribeTaskQueueResponse>, Status> {
        self.describe_task_queue_impl(request).await
    }

    async fn update_workflow_execution(
        &self,
        request: Request<UpdateWorkflowExecutionRequest>,
    ) -> Result<Response<UpdateWorkflowExecutionResponse>, Status> {
        self.update_workflow_execution_impl(request).await
    }

    async fn poll_workflow_execution_update(
        &self,
        request: Request<PollWorkflowExecutionUpdateRequest>,
    ) -> Result<Response<PollWorkflowExecutionUpdateResponse>, Status> {
        self.poll_workflow_execution_update_impl(request).await
    }

    async fn execute_multi_operation(
        &self,
        request: Request<ExecuteMultiOperationRequest>,
    ) -> Result<Response<ExecuteMultiOperationResponse>, Status> {
        self.execute_multi_operation_impl(request).await
    }

    async fn delete_workflow_execution(
        &self,
        request: Request<DeleteWorkflowExecutionRequest>,
    ) -> Result<Response<DeleteWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = self.execution_ref(&ns, &req.workflow_execution)?;
        let wf = run.workflow_id.clone();
        self.call::<()>(&ns, &wf, HistoryRequest::Delete(run))
            .await?;
        Ok(Response::new(DeleteWorkflowExecutionResponse {}))
    }

    async fn reset_workflow_execution(
        &self,
        request: Request<ResetWorkflowExecutionRequest>,
    ) -> Result<Response<ResetWorkflowExecutionResponse>, Status> {
        self.reset_workflow_execution_impl(request).await
    }

    async fn reset_sticky_task_queue(
        &self,
        request: Request<ResetStickyTaskQueueRequest>,
    ) -> Result<Response<ResetStickyTaskQueueResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = self.execution_ref(&ns, &req.execution)?;
        let wf = run.workflow_id.clone();
        self.call::<()>(
            &ns,
            &wf,
            HistoryRequest::Apply {
                run,
                change: sundial_actors::ops::RunChange::ResetStickyTaskQueue,
            },
        )
        .await?;
        Ok(Response::new(ResetStickyTaskQueueResponse {}))
    }

    async fn shutdown_worker(
        &self,
        request: Request<ShutdownWorkerRequest>,
    ) -> Result<Response<ShutdownWorkerResponse>, Status> {
        let req = request.into_inner();
        if !req.sticky_task_queue.is_empty()
            && let Ok(ns) = self.namespace_id(&req.namespace).await
        {
            let key = Matching::key(&ns, &req.sticky_task_queue, WORKFLOW_QUEUE);
            self.node
                .matching
                .unload_sticky_queue(key)
                .await
                .map_err(to_status)?;
        }
        Ok(Response::new(ShutdownWorkerResponse {}))
    }
}

fn query_failed_details(
    message: &str,
    failure: Option<sundial_engine::api::failure::v1::Failure>,
) -> bytes::Bytes {
    use sundial_engine::api::errordetails::v1::QueryFailedFailure;
    let status = temporalio_protos::google::rpc::Status {
        code: tonic::Code::InvalidArgument as i32,
        message: message.to_string(),
        details: vec![prost_wkt_types::Any {
            type_url: "type.googleapis.com/temporal.api.errordetails.v1.QueryFailedFailure".into(),
            value: QueryFailedFailure { failure }.encode_to_vec(),
        }],
    };
    status.encode_to_vec().into()
}

fn page_size(requested: i32) -> i64 {
    match requested {
        n if n > 0 => i64::from(n).min(HISTORY_PAGE_SIZE),
        _ => HISTORY_PAGE_SIZE,
    }
}

impl Frontend {
    /// A later page of the history of a workflow task: bounded by the task's end, with a
    /// transient task's events at the tail of the last page.
    async fn workflow_task_page(
        &self,
        namespace_id: &str,
        run: &RunRef,
        token: &HistoryToken,
        maximum_page_size: i32,
    ) -> Result<Response<GetWorkflowExecutionHistoryResponse>, Status> {
        let key = ExecutionKey {
            namespace_id: namespace_id.to_string(),
            workflow_id: run.workflow_id.clone(),
            run_id: token.run_id.clone(),
        };
        let (events, next_page_token) = responses::page(
            &self.node.history,
            &key,
            token.next_event_id,
            token.end_event_id,
            token.transient.clone().unwrap_or_default(),
            page_size(maximum_page_size),
        )
        .await
        .map_err(to_status)?;
        Ok(Response::new(GetWorkflowExecutionHistoryResponse {
            history: Some(HistoryMessage { events }),
            next_page_token,
            ..Default::default()
        }))
    }

    async fn report_by_token(
        &self,
        token: &[u8],
        report: ActivityReport,
        identity: String,
    ) -> Result<Reported, Status> {
        let token = decode_token(token)?;
        let (report, limited) = self.within_limits(report, &identity)?;
        let run = run_of(&token);
        let cancel_requested = self
            .call(
                &token.namespace_id,
                &token.workflow_id,
                HistoryRequest::ReportActivity {
                    run,
                    target: ActivityTarget::Scheduled {
                        scheduled_event_id: token.scheduled_event_id,
                        attempt: token.attempt,
                    },
                    report,
                    identity,
                },
            )
            .await?;
        Ok(limited.reported(cancel_requested))
    }

    /// Checks an activity report against Temporal's limits: the identity of a response (not of
    /// a heartbeat) against `limit.maxIDLength`, its payloads against `limit.blobSize.error`
    /// (see [`within_blob_limit`]).
    fn within_limits(
        &self,
        report: ActivityReport,
        identity: &str,
    ) -> Result<(ActivityReport, Limited), Status> {
        let limits = self.node.history.limits();
        if !matches!(report, ActivityReport::Heartbeat(_)) {
            check_length_within(identity, "Identity", limits.max_id_length)?;
        }
        Ok(within_blob_limit(report, &limits))
    }

    async fn report_by_id(
        &self,
        namespace: &str,
        workflow_id: &str,
        run_id: &str,
        activity_id: &str,
        report: ActivityReport,
        identity: String,
    ) -> Result<Reported, Status> {
        let ns = self.namespace_id(namespace).await?;
        self.check_id(workflow_id, "WorkflowId")?;
        self.check_id(activity_id, "ActivityId")?;
        let (report, limited) = self.within_limits(report, &identity)?;
        let run = RunRef {
            namespace_id: ns.clone(),
            workflow_id: workflow_id.to_string(),
            run_id: run_id.to_string(),
        };
        let target = ActivityTarget::Id(activity_id.to_string());
        let cancel_requested = self
            .call(
                &ns,
                workflow_id,
                HistoryRequest::ReportActivity {
                    run,
                    target,
                    report,
                    identity,
                },
            )
            .await?;
        Ok(limited.reported(cancel_requested))
    }
}

/// Where the next history page starts.
#[derive(Clone, PartialEq, prost::Message)]
struct HistoryToken {
    /// The run being paged.
    #[prost(string, tag = "1")]
    run_id: String,
    /// First event id of the next page.
    #[prost(int64, tag = "2")]
    next_event_id: i64,
    /// For the pages of a workflow task: where its history ends (exclusive); 0 otherwise.
    #[prost(int64, tag = "3")]
    end_event_id: i64,
    /// For the pages of a transient workflow task: its events, appended to the last page.
    #[prost(message, optional, tag = "4")]
    transient: Option<HistoryMessage>,
}

/// Event types of a history, for logs and tests.
pub fn event_types(events: &[sundial_engine::api::history::v1::HistoryEvent]) -> Vec<EventType> {
    events
        .iter()
        .map(|e| EventType::try_from(e.event_type).unwrap_or_default())
        .collect()
}
