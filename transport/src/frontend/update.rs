//! Workflow updates: UpdateWorkflowExecution, PollWorkflowExecutionUpdate and update-with-start
//! (ExecuteMultiOperation with exactly [Start, Update], as Temporal allows).
//!
//! A call waits for the stage asked for at most `history.longPollExpirationInterval` (20 s),
//! then answers with the stage reached so far (the SDK calls again), as Temporal does.

use super::*;
use prost_wkt_types::Any;
use sundial_actors::ops::StartOutcome;
use sundial_actors::updates::{UpdateAnswer, UpdateRequest};
use sundial_engine::api::{
    enums::v1::{
        ResourceExhaustedCause, ResourceExhaustedScope,
        UpdateWorkflowExecutionLifecycleStage as Stage,
    },
    errordetails::v1::{
        MultiOperationExecutionFailure, ResourceExhaustedFailure, WorkflowNotReadyFailure,
        multi_operation_execution_failure::OperationStatus,
    },
    failure::v1::MultiOperationExecutionAborted,
    history::v1::history_event::Attributes,
    update::v1::{Meta, Outcome, UpdateRef, WaitPolicy},
    workflowservice::v1::{
        execute_multi_operation_request::operation::Operation as MultiOp,
        execute_multi_operation_response::{
            Response as MultiResponse, response::Response as OpResponse,
        },
    },
};
use sundial_engine::{AbortReason, UpdateRefusal, UpdateStatus};
use temporalio_protos::google::rpc::Status as RpcStatus;
use tonic::Code;

/// Longest an update call waits for its stage (`history.longPollExpirationInterval`).
const UPDATE_LONG_POLL: Duration = Duration::from_secs(20);
/// How often an update that met a run closing into a new run is sent again (to the new run).
const CLOSING_RETRIES: usize = 3;
const MULTI_OP_MESSAGE: &str = "Update-with-Start could not be executed.";

/// A status with one Temporal error detail.
fn with_detail<M: Message>(code: Code, message: &str, type_name: &str, detail: M) -> Status {
    let status = RpcStatus {
        code: code as i32,
        message: message.to_string(),
        details: vec![Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, status.encode_to_vec().into())
}

fn refused(refusal: UpdateRefusal) -> Status {
    match refusal {
        UpdateRefusal::WrongFirstRun => not_found("workflow not found"),
        UpdateRefusal::WorkflowCompleted => not_found("workflow execution already completed"),
        UpdateRefusal::WorkflowTaskFailing => with_detail(
            Code::FailedPrecondition,
            "Unable to perform workflow execution update due to Workflow Task in failed state.",
            "temporal.api.errordetails.v1.WorkflowNotReadyFailure",
            WorkflowNotReadyFailure {},
        ),
        UpdateRefusal::TooManyInFlight(limit) => with_detail(
            Code::ResourceExhausted,
            &format!("limit on number of concurrent in-flight updates has been reached ({limit})"),
            "temporal.api.errordetails.v1.ResourceExhaustedFailure",
            ResourceExhaustedFailure {
                cause: ResourceExhaustedCause::ConcurrentLimit as i32,
                scope: ResourceExhaustedScope::Namespace as i32,
            },
        ),
        UpdateRefusal::TooManyTotal(limit) => Status::failed_precondition(format!(
            "limit on number of total updates has been reached ({limit})"
        )),
    }
}

/// The update request of UpdateWorkflowExecution, checked and completed as Temporal's frontend
/// does (an empty update id gets a fresh one; an unspecified stage means COMPLETED).
fn prepare_update(req: &mut UpdateWorkflowExecutionRequest, max_id_len: i64) -> Result<(), Status> {
    let execution = req
        .workflow_execution
        .as_ref()
        .ok_or_else(|| invalid("Execution is not set on request."))?;
    check_id_within(&execution.workflow_id, "WorkflowId", max_id_len)?;
    let request = req
        .request
        .as_mut()
        .ok_or_else(|| invalid("Update meta is not set on request."))?;
    let meta = request
        .meta
        .as_mut()
        .ok_or_else(|| invalid("Update meta is not set on request."))?;
    if meta.update_id.len() as i64 > max_id_len {
        return Err(invalid("UpdateId length exceeds limit."));
    }
    if meta.update_id.is_empty() {
        meta.update_id = uuid::Uuid::new_v4().to_string();
    }
    let input = request
        .input
        .as_ref()
        .ok_or_else(|| invalid("Update input is not set on request."))?;
    if input.name.is_empty() {
        return Err(invalid("Update name is not set on request."));
    }
    let policy = req.wait_policy.get_or_insert_with(WaitPolicy::default);
    if policy.lifecycle_stage == Stage::Unspecified as i32 {
        policy.lifecycle_stage = Stage::Completed as i32;
    }
    if policy.lifecycle_stage == Stage::Admitted as i32 {
        return Err(Status::permission_denied(
            "UpdateWorkflowExecution issued asynchronously and waiting on update admitted is not supported.",
        ));
    }
    Ok(())
}

fn update_id_of(req: &UpdateWorkflowExecutionRequest) -> String {
    req.request
        .as_ref()
        .and_then(|r| r.meta.as_ref())
        .map_or_else(String::new, |m: &Meta| m.update_id.clone())
}

fn stage_of(req: &UpdateWorkflowExecutionRequest) -> i32 {
    req.wait_policy
        .as_ref()
        .map_or(Stage::Completed as i32, |p| p.lifecycle_stage)
}

/// What an answer tells the caller: the stage, the outcome once completed, and the run.
struct Reached {
    run_id: String,
    stage: Stage,
    outcome: Option<Outcome>,
}

/// Why waiting ended without a stage to report.
enum Ended {
    /// The run closed into a new run before the update was accepted: try the new run.
    Continuing,
    /// Anything else, as the caller sees it.
    Failed(Status),
}

impl From<Status> for Ended {
    fn from(status: Status) -> Self {
        Ended::Failed(status)
    }
}

/// How long an update call waits for its stage: the long-poll interval, after which it answers
/// with the stage reached; or, when the caller's deadline comes first, until then (the caller
/// times out, as with Temporal, whose soft timeout never fires first then).
#[derive(Debug, Clone, Copy)]
struct Wait {
    limit: Duration,
    report_stage: bool,
}

impl Wait {
    fn of<T>(request: &Request<T>) -> Self {
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        match deadline {
            Some(d) if d <= UPDATE_LONG_POLL => Wait {
                limit: d,
                report_stage: false,
            },
            _ => Wait {
                limit: UPDATE_LONG_POLL,
                report_stage: true,
            },
        }
    }
}

impl Frontend {
    /// Sends an update request and waits for its answer as `wait` says (`run`, `update_id`
    /// name the update, to ask for the stage it reached when the wait is over).
    async fn wait_update(
        &self,
        run: &RunRef,
        update_id: &str,
        wait: Wait,
        request: UpdateRequest,
    ) -> Result<Reached, Ended> {
        let (ns, wf) = (run.namespace_id.clone(), run.workflow_id.clone());
        let call = self.call(&ns, &wf, HistoryRequest::Update(request));
        let answer = match tokio::time::timeout(wait.limit, call).await {
            Ok(answer) => answer?,
            Err(_) => self.wait_over(wait, run, update_id).await?,
        };
        self.reached(run, update_id, answer).await
    }

    /// The wait is over without an answer: the stage reached so far, or the caller's deadline.
    async fn wait_over(
        &self,
        wait: Wait,
        run: &RunRef,
        update_id: &str,
    ) -> Result<UpdateAnswer, Status> {
        if !wait.report_stage {
            return Err(Status::deadline_exceeded("context deadline exceeded"));
        }
        self.current_update_answer(run, update_id).await
    }

    /// The stage an update reached, answered at once.
    async fn current_update_answer(
        &self,
        run: &RunRef,
        update_id: &str,
    ) -> Result<UpdateAnswer, Status> {
        let (ns, wf) = (run.namespace_id.clone(), run.workflow_id.clone());
        let run = run.clone();
        let update_id = update_id.to_string();
        let poll = UpdateRequest::Poll {
            run,
            update_id,
            stage: Stage::Unspecified as i32,
        };
        self.call(&ns, &wf, HistoryRequest::Update(poll)).await
    }

    async fn reached(
        &self,
        run: &RunRef,
        update_id: &str,
        answer: UpdateAnswer,
    ) -> Result<Reached, Ended> {
        let (run_id, status) = match answer {
            UpdateAnswer::Reached { run_id, status } => (run_id, status),
            UpdateAnswer::Refused(refusal) => return Err(refused(refusal).into()),
            UpdateAnswer::NotFound => {
                return Err(not_found(format!("update {update_id:?} not found")).into());
            }
        };
        let (stage, outcome) = match status {
            UpdateStatus::Admitted => (Stage::Admitted, None),
            UpdateStatus::Accepted => (Stage::Accepted, None),
            UpdateStatus::Outcome(outcome) => (Stage::Completed, Some(*outcome)),
            UpdateStatus::CompletedAt(event_id) => {
                let key = ExecutionKey {
                    namespace_id: run.namespace_id.clone(),
                    workflow_id: run.workflow_id.clone(),
                    run_id: run_id.clone(),
                };
                let events = read_events(&self.node.history, &key, event_id, event_id + 1)
                    .await
                    .map_err(to_status)?;
                let outcome = events.into_iter().find_map(|e| match e.attributes {
                    Some(Attributes::WorkflowExecutionUpdateCompletedEventAttributes(a)) => {
                        a.outcome
                    }
                    _ => None,
                });
                (Stage::Completed, Some(outcome.unwrap_or_default()))
            }
            UpdateStatus::Aborted(AbortReason::WorkflowContinuing) => {
                return Err(Ended::Continuing);
            }
            UpdateStatus::Aborted(AbortReason::WorkflowCompleted) => {
                return Err(not_found("workflow update was aborted by closing workflow").into());
            }
        };
        Ok(Reached {
            run_id,
            stage,
            outcome,
        })
    }

    fn update_response(
        workflow_id: &str,
        update_id: &str,
        reached: Reached,
    ) -> UpdateWorkflowExecutionResponse {
        UpdateWorkflowExecutionResponse {
            update_ref: Some(UpdateRef {
                workflow_execution: Some(WorkflowExecution {
                    workflow_id: workflow_id.to_string(),
                    run_id: reached.run_id,
                }),
                update_id: update_id.to_string(),
            }),
            outcome: reached.outcome,
            stage: reached.stage as i32,
            link: None,
        }
    }

    pub(super) async fn update_workflow_execution_impl(
        &self,
        request: Request<UpdateWorkflowExecutionRequest>,
    ) -> Result<Response<UpdateWorkflowExecutionResponse>, Status> {
        let wait = Wait::of(&request);
        let mut req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        prepare_update(&mut req, self.max_id_length())?;
        check_blob(
            req.request
                .as_ref()
                .and_then(|r| r.input.as_ref())
                .and_then(|i| i.args.as_ref()),
            &self.node.history.limits(),
        )?;
        let run = self.execution_ref(&ns, &req.workflow_execution)?;
        let update_id = update_id_of(&req);
        let stage = stage_of(&req);
        let request = req.request.clone().unwrap_or_default();
        let mut tries = 0;
        loop {
            let first_run = req.first_execution_run_id.clone();
            let (r, request) = (run.clone(), request.clone());
            let result = self
                .wait_update(
                    &run,
                    &update_id,
                    wait,
                    UpdateRequest::Update {
                        run: r,
                        first_execution_run_id: first_run,
                        request,
                        stage,
                    },
                )
                .await;
            match result {
                Ok(reached) => {
                    return Ok(Response::new(Self::update_response(
                        &run.workflow_id,
                        &update_id,
                        reached,
                    )));
                }
                // The run continued as new while the update waited: it goes to the new run.
                Err(Ended::Continuing) if run.run_id.is_empty() && tries < CLOSING_RETRIES => {
                    tries += 1;
                }
                Err(Ended::Continuing) => {
                    return Err(not_found("workflow update was aborted by closing workflow"));
                }
                Err(Ended::Failed(status)) => return Err(status),
            }
        }
    }

    pub(super) async fn poll_workflow_execution_update_impl(
        &self,
        request: Request<PollWorkflowExecutionUpdateRequest>,
    ) -> Result<Response<PollWorkflowExecutionUpdateResponse>, Status> {
        let wait = Wait::of(&request);
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let update_ref = req
            .update_ref
            .ok_or_else(|| invalid("UpdateRef is not set on request."))?;
        let run = self.execution_ref(&ns, &update_ref.workflow_execution)?;
        let update_id = update_ref.update_id.clone();
        let stage = req.wait_policy.map_or(0, |p| p.lifecycle_stage);
        let (r, id) = (run.clone(), update_id.clone());
        let reached = self
            .wait_update(
                &run,
                &update_id,
                wait,
                UpdateRequest::Poll {
                    run: r,
                    update_id: id,
                    stage,
                },
            )
            .await
            .map_err(|e| match e {
                Ended::Continuing => not_found("workflow update was aborted by closing workflow"),
                Ended::Failed(status) => status,
            })?;
        Ok(Response::new(PollWorkflowExecutionUpdateResponse {
            outcome: reached.outcome,
            stage: reached.stage as i32,
            update_ref: Some(UpdateRef {
                workflow_execution: Some(WorkflowExecution {
                    workflow_id: run.workflow_id.clone(),
                    run_id: reached.run_id,
                }),
                update_id,
            }),
        }))
    }

    pub(super) async fn execute_multi_operation_impl(
        &self,
        request: Request<ExecuteMultiOperationRequest>,
    ) -> Result<Response<ExecuteMultiOperationResponse>, Status> {
        let wait = Wait::of(&request);
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let mut ops = req.operations.into_iter().map(|o| o.operation);
        let (
            Some(Some(MultiOp::StartWorkflow(start_req))),
            Some(Some(MultiOp::UpdateWorkflow(mut update_req))),
            None,
        ) = (ops.next(), ops.next(), ops.next())
        else {
            return Err(invalid("Operations have to be exactly [Start, Update]."));
        };
        let workflow_id = start_req.workflow_id.clone();
        let limits = self.node.history.limits();
        let custom = self.node.history.search_attributes(&ns);
        let start_check =
            start_operation(&ns, &req.namespace, start_req, &limits, custom.as_deref());
        let update_check = update_operation(
            &req.namespace,
            &workflow_id,
            &mut update_req,
            self.max_id_length(),
        );
        let start = match (start_check, update_check) {
            (Ok(start), Ok(())) => start,
            (start, update) => {
                return Err(multi_op_error(vec![
                    start.err().unwrap_or_else(aborted_op),
                    update.err().unwrap_or_else(aborted_op),
                ]));
            }
        };
        let update_id = update_id_of(&update_req);
        let stage = stage_of(&update_req);
        let request = update_req.request.clone().unwrap_or_default();
        let with_start = UpdateRequest::UpdateWithStart {
            start: Box::new(start),
            request,
            stage,
        };
        let replies = self
            .node
            .history
            .submit(&ns, &workflow_id, HistoryRequest::Update(with_start))
            .await;
        let (started, update_answer) = match replies.map(<[_; 2]>::try_from) {
            Ok(Ok([started, update])) => (started, update),
            Ok(Err(_)) => {
                let e = Status::internal("update-with-start is answered twice");
                return Err(multi_op_error(vec![e, aborted_op()]));
            }
            Err(e) => return Err(multi_op_error(vec![to_status(e), aborted_op()])),
        };
        let started: StartOutcome = sundial_actors::ops::expect(started.await)
            .map_err(|e| multi_op_error(vec![to_status(e), aborted_op()]))?;
        let run = RunRef {
            namespace_id: ns.clone(),
            workflow_id: workflow_id.clone(),
            run_id: started.run_id.clone(),
        };
        let answer = match tokio::time::timeout(wait.limit, update_answer).await {
            Ok(answer) => sundial_actors::ops::expect(answer).map_err(to_status),
            Err(_) => self.wait_over(wait, &run, &update_id).await,
        };
        let reached = match answer {
            Ok(answer) => self.reached(&run, &update_id, answer).await,
            Err(status) => Err(Ended::Failed(status)),
        };
        let reached = reached.map_err(|e| {
            let status = match e {
                Ended::Continuing => Status::aborted("workflow is closing"),
                Ended::Failed(status) => status,
            };
            multi_op_error(vec![Status::ok(""), status])
        })?;
        let start_response = StartWorkflowExecutionResponse {
            run_id: started.run_id,
            started: started.started,
            status: WorkflowExecutionStatus::Running as i32,
            ..Default::default()
        };
        Ok(Response::new(ExecuteMultiOperationResponse {
            responses: vec![
                MultiResponse {
                    response: Some(OpResponse::StartWorkflow(start_response)),
                },
                MultiResponse {
                    response: Some(OpResponse::UpdateWorkflow(Self::update_response(
                        &workflow_id,
                        &update_id,
                        reached,
                    ))),
                },
            ],
        }))
    }
}

/// The start half of update-with-start, checked as Temporal's frontend does.
fn start_operation(
    namespace_id: &str,
    namespace: &str,
    mut req: StartWorkflowExecutionRequest,
    limits: &sundial_engine::Limits,
    custom: Option<&sundial_engine::search_attributes::SearchAttributeTypes>,
) -> Result<StartWorkflow, Status> {
    if !req.namespace.is_empty() && req.namespace != namespace {
        return Err(invalid(
            "Operation namespace did not match request's namespace.",
        ));
    }
    if !req.cron_schedule.is_empty() {
        return Err(invalid("CronSchedule is not allowed."));
    }
    if req.request_eager_execution {
        return Err(invalid("RequestEagerExecution is not supported."));
    }
    if duration_ms(req.workflow_start_delay.as_ref()) > 0 {
        return Err(invalid("WorkflowStartDelay is not supported."));
    }
    req.namespace = namespace.to_string();
    start::start_workflow(namespace_id, req, limits, custom)
}

/// The update half of update-with-start: an update of the workflow being started.
fn update_operation(
    namespace: &str,
    workflow_id: &str,
    req: &mut UpdateWorkflowExecutionRequest,
    max_id_len: i64,
) -> Result<(), Status> {
    if !req.namespace.is_empty() && req.namespace != namespace {
        return Err(invalid(
            "Operation namespace did not match request's namespace.",
        ));
    }
    prepare_update(req, max_id_len)?;
    if !req.first_execution_run_id.is_empty() {
        return Err(invalid("FirstExecutionRunId is not allowed."));
    }
    let execution = req.workflow_execution.clone().unwrap_or_default();
    if !execution.run_id.is_empty() {
        return Err(invalid("RunId is not allowed."));
    }
    if execution.workflow_id != workflow_id {
        return Err(invalid(
            "WorkflowId is not consistent with previous operation(s).",
        ));
    }
    Ok(())
}

/// The status of an operation that was not executed because another one failed.
fn aborted_op() -> Status {
    with_detail(
        Code::Aborted,
        "Operation was aborted.",
        "temporal.api.failure.v1.MultiOperationExecutionAborted",
        MultiOperationExecutionAborted {},
    )
}

/// Temporal's MultiOperationExecution error: one status per operation, in a
/// `MultiOperationExecutionFailure` detail; the first operation that failed (rather than was
/// aborted) gives the code of the whole.
fn multi_op_error(statuses: Vec<Status>) -> Status {
    let statuses: Vec<OperationStatus> = statuses
        .into_iter()
        .map(|s| OperationStatus {
            code: s.code() as i32,
            message: s.message().to_string(),
            details: RpcStatus::decode(s.details())
                .map(|d| d.details)
                .unwrap_or_default(),
        })
        .collect();
    let aborted = |s: &OperationStatus| {
        s.details
            .iter()
            .any(|d| d.type_url.ends_with("MultiOperationExecutionAborted"))
    };
    let code = statuses
        .iter()
        .find(|s| s.code != Code::Ok as i32 && !aborted(s))
        .map_or(Code::Aborted, |s| Code::from_i32(s.code));
    with_detail(
        code,
        MULTI_OP_MESSAGE,
        "temporal.api.errordetails.v1.MultiOperationExecutionFailure",
        MultiOperationExecutionFailure { statuses },
    )
}
