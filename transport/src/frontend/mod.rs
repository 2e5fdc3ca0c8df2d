//! The public frontend: Temporal's `WorkflowService`, validating requests and routing them to
//! history shards and matching partitions through the node's handles.

mod namespaces;
mod responses;

use std::time::Duration;

use prost::Message;
use sundial_actors::matching::{ACTIVITY_QUEUE, QueryTask, QueueItem, WORKFLOW_QUEUE};
use sundial_actors::ops::{
    ActivityReport, ActivityTarget, Op, RunRef, StartWorkflow, WorkflowTaskStarted,
};
use sundial_actors::{Error, Matching, Node};
use sundial_engine::api::{
    common::v1::WorkflowExecution,
    enums::v1::{
        EventType, HistoryEventFilterType, PendingActivityState, PendingWorkflowTaskState,
        QueryRejectCondition, QueryResultType, TaskQueueKind, WorkflowExecutionStatus,
        WorkflowTaskFailedCause,
    },
    history::v1::{History as HistoryMessage, WorkflowExecutionStartedEventAttributes},
    query::v1::QueryRejected,
    taskqueue::v1::TaskQueue,
    workflow::v1::{
        PendingActivityInfo, PendingWorkflowTaskInfo, WorkflowExecutionConfig,
        WorkflowExecutionInfo,
    },
};
use sundial_engine::time::{duration_ms, timestamp};
use sundial_engine::{MutableState, Signal, StartParams, TaskToken};
use sundial_proto::workflowservice::{workflow_service_server::WorkflowService, *};
use sundial_storage::ExecutionKey;
use tonic::{Request, Response, Status};

use crate::history::read_events;
use crate::status::{invalid, not_found, to_status};

pub use namespaces::ensure as ensure_namespace;

/// Longest a poll waits before answering empty.
const MAX_POLL: Duration = Duration::from_secs(60);
/// Longest a history long poll waits.
const MAX_HISTORY_WAIT: Duration = Duration::from_secs(20);
/// Events per history page.
const HISTORY_PAGE_SIZE: i64 = 256;
/// Longest id Temporal accepts.
const MAX_ID_LENGTH: usize = 1000;

/// The frontend service.
#[derive(Clone)]
pub struct Frontend {
    node: Node,
}

impl Frontend {
    /// A frontend over a node.
    pub fn new(node: Node) -> Self {
        Self { node }
    }

    async fn namespace_id(&self, name: &str) -> Result<String, Status> {
        if name.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        Ok(self.node.namespaces.get(name).await.map_err(to_status)?.id)
    }

    async fn call<T>(
        &self,
        namespace_id: &str,
        workflow_id: &str,
        make: impl FnOnce(sundial_actors::ops::Reply<T>) -> Op,
    ) -> Result<T, Status> {
        self.node
            .history
            .call(namespace_id, workflow_id, make)
            .await
            .map_err(to_status)
    }

    async fn describe_state(&self, run: RunRef) -> Result<MutableState, Status> {
        let (ns, wf) = (run.namespace_id.clone(), run.workflow_id.clone());
        self.call(&ns, &wf, |r| Op::Describe(run, r)).await
    }
}

fn poll_timeout<T>(req: &Request<T>) -> Duration {
    let from_header = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    match from_header {
        Some(d) => d.saturating_sub(Duration::from_secs(1)).min(MAX_POLL),
        None => MAX_POLL,
    }
}

fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

fn check_id(value: &str, what: &str) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid(format!("{what} is not set on request.")));
    }
    if value.len() > MAX_ID_LENGTH {
        return Err(invalid(format!("{what} exceeds length limit.")));
    }
    Ok(())
}

fn task_queue_name(q: &Option<TaskQueue>) -> Result<String, Status> {
    match q {
        Some(q) if !q.name.is_empty() => {
            if q.name.len() > MAX_ID_LENGTH {
                return Err(invalid("TaskQueue length exceeds limit."));
            }
            Ok(q.name.clone())
        }
        _ => Err(invalid("TaskQueue is not set on request.")),
    }
}

fn decode_token(bytes: &[u8]) -> Result<TaskToken, Status> {
    if bytes.is_empty() {
        return Err(invalid("Task token not set on request."));
    }
    TaskToken::decode(bytes).map_err(|_| invalid("Error deserializing task token."))
}

fn run_of(token: &TaskToken) -> RunRef {
    RunRef {
        namespace_id: token.namespace_id.clone(),
        workflow_id: token.workflow_id.clone(),
        run_id: token.run_id.clone(),
    }
}

fn execution_ref(
    namespace_id: &str,
    execution: &Option<WorkflowExecution>,
) -> Result<RunRef, Status> {
    let e = execution
        .as_ref()
        .ok_or_else(|| invalid("Execution is not set on request."))?;
    check_id(&e.workflow_id, "WorkflowId")?;
    Ok(RunRef {
        namespace_id: namespace_id.to_string(),
        workflow_id: e.workflow_id.clone(),
        run_id: e.run_id.clone(),
    })
}

#[allow(clippy::too_many_arguments)]
fn start_params(
    namespace_id: &str,
    workflow_id: &str,
    request_id: &str,
    attributes: WorkflowExecutionStartedEventAttributes,
) -> StartParams {
    let request_id = if request_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        request_id.to_string()
    };
    StartParams {
        namespace_id: namespace_id.to_string(),
        workflow_id: workflow_id.to_string(),
        run_id: uuid::Uuid::new_v4().to_string(),
        request_id,
        attributes,
        signal: None,
    }
}

fn check_timeouts(timeouts: &[Option<&prost_wkt_types::Duration>]) -> Result<(), Status> {
    for t in timeouts {
        if duration_ms(*t) < 0 {
            return Err(invalid(
                "Invalid timeout: negative durations are not allowed.",
            ));
        }
    }
    Ok(())
}

#[tonic::async_trait]
impl WorkflowService for Frontend {
    async fn get_system_info(
        &self,
        _: Request<GetSystemInfoRequest>,
    ) -> Result<Response<GetSystemInfoResponse>, Status> {
        Ok(Response::new(GetSystemInfoResponse {
            server_version: "1.32.0".into(),
            capabilities: Some(get_system_info_response::Capabilities {
                signal_and_query_header: true,
                internal_error_differentiation: true,
                activity_failure_include_heartbeat: true,
                supports_schedules: false,
                encoded_failure_attributes: true,
                build_id_based_versioning: false,
                upsert_memo: true,
                eager_workflow_start: false,
                sdk_metadata: true,
                count_group_by_execution_status: false,
                nexus: false,
                ..Default::default()
            }),
        }))
    }

    async fn register_namespace(
        &self,
        request: Request<RegisterNamespaceRequest>,
    ) -> Result<Response<RegisterNamespaceResponse>, Status> {
        namespaces::register(&self.node.namespaces, request.into_inner()).await?;
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
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        check_id(&req.workflow_id, "WorkflowId")?;
        if req.workflow_type.as_ref().is_none_or(|t| t.name.is_empty()) {
            return Err(invalid("WorkflowType is not set on request."));
        }
        task_queue_name(&req.task_queue)?;
        check_timeouts(&[
            req.workflow_execution_timeout.as_ref(),
            req.workflow_run_timeout.as_ref(),
            req.workflow_task_timeout.as_ref(),
            req.workflow_start_delay.as_ref(),
        ])?;
        let attributes = WorkflowExecutionStartedEventAttributes {
            workflow_type: req.workflow_type,
            task_queue: req.task_queue.map(|q| TaskQueue {
                kind: TaskQueueKind::Normal as i32,
                ..q
            }),
            input: req.input,
            workflow_execution_timeout: req.workflow_execution_timeout,
            workflow_run_timeout: req.workflow_run_timeout,
            workflow_task_timeout: req.workflow_task_timeout,
            identity: req.identity,
            retry_policy: req.retry_policy,
            cron_schedule: req.cron_schedule,
            memo: req.memo,
            search_attributes: req.search_attributes,
            header: req.header,
            first_workflow_task_backoff: req.workflow_start_delay,
            continued_failure: req.continued_failure,
            last_completion_result: req.last_completion_result,
            priority: req.priority,
            ..Default::default()
        };
        let start = StartWorkflow {
            params: start_params(&ns, &req.workflow_id, &req.request_id, attributes),
            reuse_policy: req.workflow_id_reuse_policy,
            conflict_policy: req.workflow_id_conflict_policy,
        };
        let outcome = self
            .call(&ns, &req.workflow_id, |r| Op::Start(start, r))
            .await?;
        Ok(Response::new(StartWorkflowExecutionResponse {
            run_id: outcome.run_id,
            started: outcome.started,
            ..Default::default()
        }))
    }

    async fn signal_with_start_workflow_execution(
        &self,
        request: Request<SignalWithStartWorkflowExecutionRequest>,
    ) -> Result<Response<SignalWithStartWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        check_id(&req.workflow_id, "WorkflowId")?;
        if req.workflow_type.as_ref().is_none_or(|t| t.name.is_empty()) {
            return Err(invalid("WorkflowType is not set on request."));
        }
        if req.signal_name.is_empty() {
            return Err(invalid("SignalName is not set on request."));
        }
        task_queue_name(&req.task_queue)?;
        let signal = Signal {
            name: req.signal_name,
            input: req.signal_input,
            header: req.header.clone(),
            identity: req.identity.clone(),
            request_id: String::new(),
            skip_generate_workflow_task: false,
        };
        let attributes = WorkflowExecutionStartedEventAttributes {
            workflow_type: req.workflow_type,
            task_queue: req.task_queue.map(|q| TaskQueue {
                kind: TaskQueueKind::Normal as i32,
                ..q
            }),
            input: req.input,
            workflow_execution_timeout: req.workflow_execution_timeout,
            workflow_run_timeout: req.workflow_run_timeout,
            workflow_task_timeout: req.workflow_task_timeout,
            identity: req.identity,
            retry_policy: req.retry_policy,
            cron_schedule: req.cron_schedule,
            memo: req.memo,
            search_attributes: req.search_attributes,
            header: req.header,
            first_workflow_task_backoff: req.workflow_start_delay,
            priority: req.priority,
            ..Default::default()
        };
        let start = StartWorkflow {
            params: start_params(&ns, &req.workflow_id, &req.request_id, attributes),
            reuse_policy: req.workflow_id_reuse_policy,
            conflict_policy: req.workflow_id_conflict_policy,
        };
        let outcome = self
            .call(&ns, &req.workflow_id, |r| {
                Op::SignalWithStart(start, signal, r)
            })
            .await?;
        Ok(Response::new(SignalWithStartWorkflowExecutionResponse {
            run_id: outcome.run_id,
            started: outcome.started,
            ..Default::default()
        }))
    }

    async fn poll_workflow_task_queue(
        &self,
        request: Request<PollWorkflowTaskQueueRequest>,
    ) -> Result<Response<PollWorkflowTaskQueueResponse>, Status> {
        let timeout = poll_timeout(&request);
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let queue = task_queue_name(&req.task_queue)?;
        let sticky = req
            .task_queue
            .as_ref()
            .is_some_and(|q| q.kind == TaskQueueKind::Sticky as i32);
        let key = Matching::key(&ns, &queue, WORKFLOW_QUEUE);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(matched) = self.node.matching.poll(&key, left).await else {
                return Ok(Response::new(PollWorkflowTaskQueueResponse::default()));
            };
            match matched.item.clone() {
                QueueItem::Task(task) => {
                    let request_id = uuid::Uuid::new_v4().to_string();
                    let run = RunRef {
                        namespace_id: task.namespace_id.clone(),
                        workflow_id: task.workflow_id.clone(),
                        run_id: task.run_id.clone(),
                    };
                    let identity = req.identity.clone();
                    let polled = queue.clone();
                    let result: Result<WorkflowTaskStarted, Error> = self
                        .node
                        .history
                        .call(&task.namespace_id, &task.workflow_id, |reply| {
                            Op::RecordWorkflowTaskStarted {
                                run,
                                scheduled_event_id: task.scheduled_event_id,
                                attempt: task.attempt,
                                request_id,
                                identity,
                                polled_queue: polled,
                                reply,
                            }
                        })
                        .await;
                    match result {
                        Ok(started) => {
                            matched.ack(true);
                            let response =
                                responses::workflow_task(&self.node.history, started, sticky)
                                    .await
                                    .map_err(to_status)?;
                            return Ok(Response::new(response));
                        }
                        Err(Error::Engine(_) | Error::NotFound(_)) => matched.ack(true),
                        Err(e) => {
                            matched.ack(false);
                            return Err(to_status(e));
                        }
                    }
                }
                QueueItem::Query(query) => {
                    matched.ack(true);
                    let run = RunRef {
                        namespace_id: query.namespace_id.clone(),
                        workflow_id: query.workflow_id.clone(),
                        run_id: query.run_id.clone(),
                    };
                    let Ok(state) = self.describe_state(run).await else {
                        continue;
                    };
                    let from = if sticky {
                        state.last_completed_wft_started_event_id + 1
                    } else {
                        1
                    };
                    let key = ExecutionKey {
                        namespace_id: state.namespace_id.clone(),
                        workflow_id: state.workflow_id.clone(),
                        run_id: state.run_id.clone(),
                    };
                    let events = read_events(&self.node.history, &key, from, state.next_event_id)
                        .await
                        .map_err(to_status)?;
                    let token = TaskToken {
                        namespace_id: state.namespace_id.clone(),
                        workflow_id: state.workflow_id.clone(),
                        run_id: state.run_id.clone(),
                        activity_id: query.query_id.clone(),
                        query: true,
                        ..Default::default()
                    };
                    let attrs = state.started.clone().unwrap_or_default();
                    return Ok(Response::new(PollWorkflowTaskQueueResponse {
                        task_token: token.encode_to_vec(),
                        workflow_execution: Some(WorkflowExecution {
                            workflow_id: state.workflow_id.clone(),
                            run_id: state.run_id.clone(),
                        }),
                        workflow_type: attrs.workflow_type,
                        previous_started_event_id: state.last_completed_wft_started_event_id,
                        started_event_id: state.last_completed_wft_started_event_id,
                        history: Some(HistoryMessage { events }),
                        query: Some(query.query),
                        workflow_execution_task_queue: attrs.task_queue,
                        ..Default::default()
                    }));
                }
            }
        }
    }

    async fn respond_workflow_task_completed(
        &self,
        request: Request<RespondWorkflowTaskCompletedRequest>,
    ) -> Result<Response<RespondWorkflowTaskCompletedResponse>, Status> {
        let req = request.into_inner();
        let token = decode_token(&req.task_token)?;
        let namespace = req.namespace.clone();
        let sticky_poll = req
            .sticky_attributes
            .as_ref()
            .is_some_and(|s| s.worker_task_queue.is_some());
        let run = run_of(&token);
        let completed = self
            .call(&token.namespace_id, &token.workflow_id, |reply| {
                Op::CompleteWorkflowTask {
                    run,
                    scheduled_event_id: token.scheduled_event_id,
                    attempt: token.attempt,
                    request: Box::new(req),
                    reply,
                }
            })
            .await?;
        let mut response = RespondWorkflowTaskCompletedResponse::default();
        for ai in &completed.outcome.eager_activities {
            response.activity_tasks.push(responses::activity_task(
                &namespace,
                &completed.state,
                ai,
            ));
        }
        if let Some(start) = completed.outcome.new_workflow_task {
            let started = WorkflowTaskStarted {
                run_id: completed.state.run_id.clone(),
                start,
                state: completed.state.clone(),
            };
            response.workflow_task = Some(
                responses::workflow_task(&self.node.history, started, sticky_poll)
                    .await
                    .map_err(to_status)?,
            );
        }
        Ok(Response::new(response))
    }

    async fn respond_workflow_task_failed(
        &self,
        request: Request<RespondWorkflowTaskFailedRequest>,
    ) -> Result<Response<RespondWorkflowTaskFailedResponse>, Status> {
        let req = request.into_inner();
        let token = decode_token(&req.task_token)?;
        let run = run_of(&token);
        let cause = WorkflowTaskFailedCause::try_from(req.cause)
            .unwrap_or(WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure);
        self.call(&token.namespace_id, &token.workflow_id, |reply| {
            Op::FailWorkflowTask {
                run,
                scheduled_event_id: token.scheduled_event_id,
                attempt: token.attempt,
                cause,
                failure: req.failure,
                identity: req.identity,
                reply,
            }
        })
        .await?;
        Ok(Response::new(RespondWorkflowTaskFailedResponse {}))
    }

    async fn poll_activity_task_queue(
        &self,
        request: Request<PollActivityTaskQueueRequest>,
    ) -> Result<Response<PollActivityTaskQueueResponse>, Status> {
        let timeout = poll_timeout(&request);
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let queue = task_queue_name(&req.task_queue)?;
        let key = Matching::key(&ns, &queue, ACTIVITY_QUEUE);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(matched) = self.node.matching.poll(&key, left).await else {
                return Ok(Response::new(PollActivityTaskQueueResponse::default()));
            };
            let QueueItem::Task(task) = matched.item.clone() else {
                matched.ack(true);
                continue;
            };
            let run = RunRef {
                namespace_id: task.namespace_id.clone(),
                workflow_id: task.workflow_id.clone(),
                run_id: task.run_id.clone(),
            };
            let identity = req.identity.clone();
            let request_id = uuid::Uuid::new_v4().to_string();
            let result = self
                .node
                .history
                .call(&task.namespace_id, &task.workflow_id, |reply| {
                    Op::RecordActivityTaskStarted {
                        run,
                        scheduled_event_id: task.scheduled_event_id,
                        attempt: task.attempt,
                        request_id,
                        identity,
                        reply,
                    }
                })
                .await;
            match result {
                Ok(started) => {
                    matched.ack(true);
                    return Ok(Response::new(responses::activity_task(
                        &req.namespace,
                        &started.state,
                        &started.activity,
                    )));
                }
                Err(Error::Engine(_) | Error::NotFound(_)) => matched.ack(true),
                Err(e) => {
                    matched.ack(false);
                    return Err(to_status(e));
                }
            }
        }
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
            .await?;
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
            .await?;
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
        self.report_by_token(
            &req.task_token,
            ActivityReport::Failed(req.failure, req.last_heartbeat_details),
            req.identity,
        )
        .await?;
        Ok(Response::new(RespondActivityTaskFailedResponse::default()))
    }

    async fn respond_activity_task_failed_by_id(
        &self,
        request: Request<RespondActivityTaskFailedByIdRequest>,
    ) -> Result<Response<RespondActivityTaskFailedByIdResponse>, Status> {
        let req = request.into_inner();
        self.report_by_id(
            &req.namespace,
            &req.workflow_id,
            &req.run_id,
            &req.activity_id,
            ActivityReport::Failed(req.failure, req.last_heartbeat_details),
            req.identity,
        )
        .await?;
        Ok(Response::new(
            RespondActivityTaskFailedByIdResponse::default(),
        ))
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
        let run = execution_ref(&ns, &req.workflow_execution)?;
        if req.signal_name.is_empty() {
            return Err(invalid("SignalName is not set on request."));
        }
        let signal = Signal {
            name: req.signal_name,
            input: req.input,
            header: req.header,
            identity: req.identity,
            request_id: req.request_id,
            skip_generate_workflow_task: false,
        };
        let wf = run.workflow_id.clone();
        self.call(&ns, &wf, |r| Op::Signal(run, signal, r)).await?;
        Ok(Response::new(SignalWorkflowExecutionResponse::default()))
    }

    async fn request_cancel_workflow_execution(
        &self,
        request: Request<RequestCancelWorkflowExecutionRequest>,
    ) -> Result<Response<RequestCancelWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = execution_ref(&ns, &req.workflow_execution)?;
        let wf = run.workflow_id.clone();
        self.call(&ns, &wf, |reply| Op::RequestCancel {
            run,
            cause: req.reason,
            identity: req.identity,
            reply,
        })
        .await?;
        Ok(Response::new(RequestCancelWorkflowExecutionResponse {}))
    }

    async fn terminate_workflow_execution(
        &self,
        request: Request<TerminateWorkflowExecutionRequest>,
    ) -> Result<Response<TerminateWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = execution_ref(&ns, &req.workflow_execution)?;
        let wf = run.workflow_id.clone();
        self.call(&ns, &wf, |reply| Op::Terminate {
            run,
            reason: req.reason,
            details: req.details,
            identity: req.identity,
            reply,
        })
        .await?;
        Ok(Response::new(TerminateWorkflowExecutionResponse {}))
    }

    async fn get_workflow_execution_history(
        &self,
        request: Request<GetWorkflowExecutionHistoryRequest>,
    ) -> Result<Response<GetWorkflowExecutionHistoryResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let mut run = execution_ref(&ns, &req.execution)?;
        let token = if req.next_page_token.is_empty() {
            None
        } else {
            Some(
                HistoryToken::decode(req.next_page_token.as_slice())
                    .map_err(|_| invalid("Invalid NextPageToken."))?,
            )
        };
        if let Some(t) = &token {
            if !run.run_id.is_empty() && run.run_id != t.run_id {
                return Err(invalid("Invalid NextPageToken: run id mismatch."));
            }
            run.run_id = t.run_id.clone();
        }
        let close_only = req.history_event_filter_type == HistoryEventFilterType::CloseEvent as i32;
        let from = token.as_ref().map_or(1, |t| t.next_event_id);
        let mut state = self.describe_state(run.clone()).await?;
        run.run_id = state.run_id.clone();
        if req.wait_new_event {
            let deadline = tokio::time::Instant::now() + MAX_HISTORY_WAIT;
            while state.close_time_ms == 0 && (close_only || state.next_event_id <= from) {
                let wait_for = if close_only {
                    state.next_event_id
                } else {
                    from
                };
                let r = run.clone();
                let watch = self.call(&ns, &run.workflow_id, |reply| Op::Watch {
                    run: r,
                    next_event_id: wait_for,
                    reply,
                });
                match tokio::time::timeout_at(deadline, watch).await {
                    Ok(s) => state = s?,
                    Err(_) => break,
                }
            }
        }
        let key = ExecutionKey {
            namespace_id: ns.clone(),
            workflow_id: run.workflow_id.clone(),
            run_id: state.run_id.clone(),
        };
        let closed = state.close_time_ms != 0;
        if close_only {
            if closed {
                let events = read_events(
                    &self.node.history,
                    &key,
                    state.close_event_id,
                    state.close_event_id + 1,
                )
                .await
                .map_err(to_status)?;
                return Ok(Response::new(GetWorkflowExecutionHistoryResponse {
                    history: Some(HistoryMessage { events }),
                    ..Default::default()
                }));
            }
            let token = HistoryToken {
                run_id: state.run_id.clone(),
                next_event_id: from,
            };
            return Ok(Response::new(GetWorkflowExecutionHistoryResponse {
                history: Some(HistoryMessage::default()),
                next_page_token: token.encode_to_vec(),
                ..Default::default()
            }));
        }
        let page = match req.maximum_page_size {
            n if n > 0 => i64::from(n).min(HISTORY_PAGE_SIZE),
            _ => HISTORY_PAGE_SIZE,
        };
        let to = state.next_event_id.min(from + page);
        let events = read_events(&self.node.history, &key, from, to)
            .await
            .map_err(to_status)?;
        let more = to < state.next_event_id || (req.wait_new_event && !closed);
        let next_page_token = if more {
            HistoryToken {
                run_id: state.run_id.clone(),
                next_event_id: to,
            }
            .encode_to_vec()
        } else {
            Vec::new()
        };
        Ok(Response::new(GetWorkflowExecutionHistoryResponse {
            history: Some(HistoryMessage { events }),
            next_page_token,
            ..Default::default()
        }))
    }

    async fn describe_workflow_execution(
        &self,
        request: Request<DescribeWorkflowExecutionRequest>,
    ) -> Result<Response<DescribeWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = execution_ref(&ns, &req.execution)?;
        let state = self.describe_state(run).await?;
        Ok(Response::new(describe(&state)))
    }

    async fn query_workflow(
        &self,
        request: Request<QueryWorkflowRequest>,
    ) -> Result<Response<QueryWorkflowResponse>, Status> {
        let timeout = poll_timeout(&request).min(Duration::from_secs(30));
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = execution_ref(&ns, &req.execution)?;
        let query = req
            .query
            .ok_or_else(|| invalid("Query is not set on request."))?;
        if query.query_type.is_empty() {
            return Err(invalid("QueryType is not set on request."));
        }
        let state = self.describe_state(run).await?;
        let status = WorkflowExecutionStatus::try_from(state.status).unwrap_or_default();
        let reject =
            match QueryRejectCondition::try_from(req.query_reject_condition).unwrap_or_default() {
                QueryRejectCondition::NotOpen => status != WorkflowExecutionStatus::Running,
                QueryRejectCondition::NotCompletedCleanly => !matches!(
                    status,
                    WorkflowExecutionStatus::Running | WorkflowExecutionStatus::Completed
                ),
                _ => false,
            };
        if reject {
            return Ok(Response::new(QueryWorkflowResponse {
                query_rejected: Some(QueryRejected {
                    status: state.status,
                }),
                ..Default::default()
            }));
        }
        let query_id = uuid::Uuid::new_v4().to_string();
        let answer = self.node.queries.register(&query_id);
        let item = QueueItem::Query(QueryTask {
            query_id: query_id.clone(),
            namespace_id: ns.clone(),
            workflow_id: state.workflow_id.clone(),
            run_id: state.run_id.clone(),
            query,
        });
        let normal = state
            .started
            .as_ref()
            .and_then(|s| s.task_queue.as_ref())
            .map(|q| q.name.clone())
            .unwrap_or_default();
        let sticky_added = !state.sticky_task_queue.is_empty()
            && self
                .node
                .matching
                .add(
                    &Matching::key(&ns, &state.sticky_task_queue, WORKFLOW_QUEUE),
                    item.clone(),
                    true,
                )
                .await
                .is_ok();
        if !sticky_added {
            self.node
                .matching
                .add(&Matching::key(&ns, &normal, WORKFLOW_QUEUE), item, false)
                .await
                .map_err(to_status)?;
        }
        let answer = match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(a)) => a,
            _ => {
                self.node.queries.forget(&query_id);
                return Err(Status::deadline_exceeded("query timed out"));
            }
        };
        if answer.completed_type == QueryResultType::Answered as i32 {
            Ok(Response::new(QueryWorkflowResponse {
                query_result: answer.query_result,
                ..Default::default()
            }))
        } else {
            let message = if answer.error_message.is_empty() {
                answer
                    .failure
                    .as_ref()
                    .map(|f| f.message.clone())
                    .unwrap_or_default()
            } else {
                answer.error_message.clone()
            };
            Err(Status::with_details(
                tonic::Code::InvalidArgument,
                message.clone(),
                query_failed_details(&message, answer.failure),
            ))
        }
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
        if !self.node.queries.answer(&token.activity_id, req) {
            return Err(not_found("query not found or already answered"));
        }
        Ok(Response::new(RespondQueryTaskCompletedResponse {}))
    }

    async fn shutdown_worker(
        &self,
        request: Request<ShutdownWorkerRequest>,
    ) -> Result<Response<ShutdownWorkerResponse>, Status> {
        let req = request.into_inner();
        if !req.sticky_task_queue.is_empty()
            && let Ok(ns) = self.namespace_id(&req.namespace).await
        {
            self.node
                .matching
                .unload(&Matching::key(&ns, &req.sticky_task_queue, WORKFLOW_QUEUE));
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

impl Frontend {
    async fn report_by_token(
        &self,
        token: &[u8],
        report: ActivityReport,
        identity: String,
    ) -> Result<bool, Status> {
        let token = decode_token(token)?;
        let run = run_of(&token);
        self.call(&token.namespace_id, &token.workflow_id, |reply| {
            Op::ReportActivity {
                run,
                target: ActivityTarget::Scheduled {
                    scheduled_event_id: token.scheduled_event_id,
                    attempt: token.attempt,
                },
                report,
                identity,
                reply,
            }
        })
        .await
    }

    async fn report_by_id(
        &self,
        namespace: &str,
        workflow_id: &str,
        run_id: &str,
        activity_id: &str,
        report: ActivityReport,
        identity: String,
    ) -> Result<bool, Status> {
        let ns = self.namespace_id(namespace).await?;
        check_id(workflow_id, "WorkflowId")?;
        check_id(activity_id, "ActivityId")?;
        let run = RunRef {
            namespace_id: ns.clone(),
            workflow_id: workflow_id.to_string(),
            run_id: run_id.to_string(),
        };
        let target = ActivityTarget::Id(activity_id.to_string());
        self.call(&ns, workflow_id, |reply| Op::ReportActivity {
            run,
            target,
            report,
            identity,
            reply,
        })
        .await
    }
}

/// Where the next history page starts.
#[derive(Clone, PartialEq, prost::Message)]
struct HistoryToken {
    #[prost(string, tag = "1")]
    run_id: String,
    #[prost(int64, tag = "2")]
    next_event_id: i64,
}

fn describe(state: &MutableState) -> DescribeWorkflowExecutionResponse {
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
            execution_duration: (state.close_time_ms > 0)
                .then(|| sundial_engine::time::duration(state.close_time_ms - state.start_time_ms)),
            state_transition_count: state.next_event_id - 1,
            ..Default::default()
        }),
        pending_activities,
        pending_workflow_task,
        ..Default::default()
    }
}

/// Event types of a history, for logs and tests.
pub fn event_types(events: &[sundial_engine::api::history::v1::HistoryEvent]) -> Vec<EventType> {
    events
        .iter()
        .map(|e| EventType::try_from(e.event_type).unwrap_or_default())
        .collect()
}
