//! Batch operations, as Temporal runs them: a job is a workflow of the server's own in the
//! namespace (id = job id, type `temporal-sys-batch-workflow-protobuf`, hidden from listings by
//! its `TemporalNamespaceDivision`), run by the node's batch worker (`crate::batcher`), whose one
//! activity applies the operation to every target and records its progress in heartbeats.
//! Describing a job describes that workflow; stopping it terminates it.

use sundial_engine::api::batch::v1::BatchOperationInfo;
use sundial_engine::api::common::v1::{Memo, Payload, Payloads, SearchAttributes, WorkflowType};
use sundial_engine::api::enums::v1::{
    BatchOperationState, BatchOperationType, TaskQueueKind, WorkflowIdConflictPolicy,
    WorkflowIdReusePolicy,
};
use sundial_engine::api::taskqueue::v1::TaskQueue as TaskQueueMessage;
use sundial_engine::api::workflowservice::v1::start_batch_operation_request::Operation;

use super::*;

/// The batch job workflow's type, as Temporal names it.
pub const BATCH_WORKFLOW_TYPE: &str = "temporal-sys-batch-workflow-protobuf";
/// The task queue of the batch worker, in each namespace (Temporal's per-namespace worker
/// queue).
pub const BATCH_TASK_QUEUE: &str = "temporal-sys-per-ns-tq";
/// The division batch jobs are listed under.
pub const BATCH_DIVISION: &str = "TemporalBatcher";
/// Memo keys of a job (Temporal's).
pub const TYPE_MEMO: &str = "batch_operation_type";
pub const REASON_MEMO: &str = "batch_operation_reason";
pub const QUERY_MEMO: &str = "batch_operation_query";
pub const STATS_MEMO: &str = "batch_operation_stats";

/// A job's counts: what its heartbeats carry while it runs and its memo once it completes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchProgress {
    /// The page token of the page being worked on (listing targets by query).
    pub page_token: Vec<u8>,
    /// The next target of the request's execution list (listing targets by list).
    pub next_execution: usize,
    /// How many targets there were at the start.
    pub total_estimate: i64,
    pub succeeded: i64,
    pub failed: i64,
}

impl BatchProgress {
    pub fn to_payload(&self) -> Payload {
        let json = serde_json::json!({
            "page_token": self.page_token,
            "next_execution": self.next_execution,
            "total_estimate": self.total_estimate,
            "succeeded": self.succeeded,
            "failed": self.failed,
        });
        json_payload(&json)
    }

    /// The progress a payload holds (the default when it holds none).
    pub fn from_payload(payload: Option<&Payload>) -> BatchProgress {
        let Some(json) =
            payload.and_then(|p| serde_json::from_slice::<serde_json::Value>(&p.data).ok())
        else {
            return BatchProgress::default();
        };
        let number = |key: &str| {
            json.get(key)
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0)
        };
        BatchProgress {
            page_token: json
                .get("page_token")
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or_default(),
            next_execution: usize::try_from(number("next_execution")).unwrap_or(0),
            total_estimate: number("total_estimate"),
            succeeded: number("succeeded"),
            failed: number("failed"),
        }
    }
}

/// A JSON payload, as SDKs encode one.
pub fn json_payload(value: &serde_json::Value) -> Payload {
    Payload {
        metadata: [("encoding".to_string(), b"json/plain".to_vec())].into(),
        data: value.to_string().into_bytes(),
        ..Default::default()
    }
}

fn json_string(payload: Option<&Payload>) -> String {
    payload
        .and_then(|p| serde_json::from_slice::<String>(&p.data).ok())
        .unwrap_or_default()
}

/// The operation's type and its name in a job's memo (Temporal's snake case). The type field is
/// deprecated in the API, which Temporal still fills, and so does Sundial.
#[allow(deprecated)]
fn operation_type(operation: &Operation) -> Option<(BatchOperationType, &'static str)> {
    Some(match operation {
        Operation::TerminationOperation(_) => (BatchOperationType::Terminate, "terminate"),
        Operation::CancellationOperation(_) => (BatchOperationType::Cancel, "cancel"),
        Operation::SignalOperation(_) => (BatchOperationType::Signal, "signal"),
        Operation::DeletionOperation(_) => (BatchOperationType::Delete, "delete"),
        Operation::ResetOperation(_) => (BatchOperationType::Reset, "reset"),
        _ => return None,
    })
}

#[allow(deprecated)]
fn type_from_memo(memo: Option<&Memo>) -> BatchOperationType {
    match json_string(memo.and_then(|m| m.fields.get(TYPE_MEMO))).as_str() {
        "terminate" => BatchOperationType::Terminate,
        "cancel" => BatchOperationType::Cancel,
        "signal" => BatchOperationType::Signal,
        "delete" => BatchOperationType::Delete,
        "reset" => BatchOperationType::Reset,
        _ => BatchOperationType::Unspecified,
    }
}

fn state_of(status: i32) -> BatchOperationState {
    match WorkflowExecutionStatus::try_from(status) {
        Ok(WorkflowExecutionStatus::Running) => BatchOperationState::Running,
        Ok(WorkflowExecutionStatus::Completed) => BatchOperationState::Completed,
        _ => BatchOperationState::Failed,
    }
}

/// The identity an operation names.
pub fn operation_identity(operation: &Operation) -> &str {
    match operation {
        Operation::TerminationOperation(o) => &o.identity,
        Operation::CancellationOperation(o) => &o.identity,
        Operation::SignalOperation(o) => &o.identity,
        Operation::DeletionOperation(o) => &o.identity,
        Operation::ResetOperation(o) => &o.identity,
        _ => "",
    }
}

/// Temporal's checks of an operation's own fields.
fn check_operation(operation: &Operation) -> Result<(), Status> {
    use sundial_engine::api::common::v1::reset_options::Target;
    use sundial_engine::api::enums::v1::ResetType;
    match operation {
        Operation::SignalOperation(o) if o.signal.is_empty() => {
            Err(invalid("must provide signal name"))
        }
        Operation::ResetOperation(o) => match &o.options {
            Some(options) => match options.target {
                None => Err(invalid("batch reset missing target")),
                Some(Target::BuildId(_)) => Err(Status::unimplemented(
                    "batch resets to a build id's reset point are not supported yet",
                )),
                Some(_) => Ok(()),
            },
            None => {
                #[allow(deprecated)]
                let reset_type = o.reset_type;
                match ResetType::try_from(reset_type) {
                    Ok(ResetType::FirstWorkflowTask | ResetType::LastWorkflowTask) => Ok(()),
                    Ok(ResetType::Unspecified) => {
                        Err(invalid("unknown batch reset type Unspecified"))
                    }
                    Err(_) => Err(invalid(format!("unknown batch reset type {reset_type}"))),
                }
            }
        },
        _ => Ok(()),
    }
}

impl Frontend {
    pub(super) async fn start_batch(
        &self,
        req: StartBatchOperationRequest,
    ) -> Result<StartBatchOperationResponse, Status> {
        #[allow(deprecated)]
        let by_list = !req.executions.is_empty();
        let selectors = [
            !req.visibility_query.is_empty(),
            by_list,
            !req.target_executions.is_empty(),
        ]
        .into_iter()
        .filter(|s| *s)
        .count();
        if req.operation.is_none()
            || req.reason.is_empty()
            || req.namespace.is_empty()
            || selectors == 0
        {
            return Err(invalid(
                "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR Executions OR TargetExecutions)",
            ));
        }
        if req.job_id.is_empty() {
            return Err(invalid("JobId is not set on request."));
        }
        if selectors > 1 {
            return Err(invalid(
                "visibility query, executions, and target executions are mutually exclusive",
            ));
        }
        let operation = req.operation.as_ref().expect("checked above");
        let Some((_, type_name)) = operation_type(operation) else {
            return Err(Status::unimplemented(
                "batch operations other than terminate, cancel, signal, delete and reset are not supported yet",
            ));
        };
        check_operation(operation)?;
        if !req.visibility_query.is_empty() {
            // As Temporal, a query that does not parse is refused now; one that names what is
            // not there fails the job (its activity does not retry it).
            if let Err(e) = self
                .list_filter(&req.namespace, &req.visibility_query)
                .await
            {
                let message = e
                    .message()
                    .strip_prefix("invalid query: ")
                    .unwrap_or_default();
                if let Some(syntax) = message.strip_prefix("malformed SQL query: ") {
                    return Err(invalid(format!("invalid visibility query: {syntax}")));
                }
            }
        }
        self.namespace_id(&req.namespace).await?;
        let identity = operation_identity(operation).to_string();
        let mut memo = Memo::default();
        memo.fields
            .insert(TYPE_MEMO.into(), json_payload(&type_name.into()));
        memo.fields
            .insert(REASON_MEMO.into(), json_payload(&req.reason.clone().into()));
        if !req.visibility_query.is_empty() {
            memo.fields.insert(
                QUERY_MEMO.into(),
                json_payload(&req.visibility_query.clone().into()),
            );
        }
        let keyword = |value: &str| Payload {
            metadata: [
                ("encoding".to_string(), b"json/plain".to_vec()),
                ("type".to_string(), b"Keyword".to_vec()),
            ]
            .into(),
            data: serde_json::Value::from(value).to_string().into_bytes(),
            ..Default::default()
        };
        let mut search_attributes = SearchAttributes::default();
        search_attributes
            .indexed_fields
            .insert("TemporalNamespaceDivision".into(), keyword(BATCH_DIVISION));
        if !identity.is_empty() {
            search_attributes
                .indexed_fields
                .insert("BatcherUser".into(), keyword(&identity));
        }
        let input = Payload {
            metadata: [
                ("encoding".to_string(), b"binary/protobuf".to_vec()),
                (
                    "messageType".to_string(),
                    b"temporal.api.workflowservice.v1.StartBatchOperationRequest".to_vec(),
                ),
            ]
            .into(),
            data: req.encode_to_vec(),
            ..Default::default()
        };
        let start = StartWorkflowExecutionRequest {
            namespace: req.namespace.clone(),
            workflow_id: req.job_id.clone(),
            workflow_type: Some(WorkflowType {
                name: BATCH_WORKFLOW_TYPE.into(),
            }),
            task_queue: Some(TaskQueueMessage {
                name: BATCH_TASK_QUEUE.into(),
                kind: TaskQueueKind::Normal as i32,
                normal_name: String::new(),
            }),
            input: Some(Payloads {
                payloads: vec![input],
            }),
            identity,
            request_id: uuid::Uuid::new_v4().to_string(),
            workflow_id_reuse_policy: WorkflowIdReusePolicy::RejectDuplicate as i32,
            workflow_id_conflict_policy: WorkflowIdConflictPolicy::Fail as i32,
            memo: Some(memo),
            search_attributes: Some(search_attributes),
            ..Default::default()
        };
        WorkflowService::start_workflow_execution(self, Request::new(start)).await?;
        self.wake_batch_worker(&req.namespace);
        Ok(StartBatchOperationResponse {})
    }

    pub(super) async fn describe_batch(
        &self,
        req: DescribeBatchOperationRequest,
    ) -> Result<DescribeBatchOperationResponse, Status> {
        if req.job_id.is_empty() {
            return Err(invalid("JobId is not set on request."));
        }
        if req.namespace.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        let described = WorkflowService::describe_workflow_execution(
            self,
            Request::new(DescribeWorkflowExecutionRequest {
                namespace: req.namespace,
                execution: Some(WorkflowExecution {
                    workflow_id: req.job_id.clone(),
                    run_id: String::new(),
                }),
            }),
        )
        .await?
        .into_inner();
        let info = described.workflow_execution_info.unwrap_or_default();
        let memo = info.memo.as_ref();
        let identity = info
            .search_attributes
            .as_ref()
            .and_then(|s| s.indexed_fields.get("BatcherUser"));
        let progress = if info.status == WorkflowExecutionStatus::Completed as i32 {
            BatchProgress::from_payload(memo.and_then(|m| m.fields.get(STATS_MEMO)))
        } else {
            let details = described
                .pending_activities
                .first()
                .and_then(|a| a.heartbeat_details.as_ref())
                .and_then(|d| d.payloads.first());
            BatchProgress::from_payload(details)
        };
        let total = if info.status == WorkflowExecutionStatus::Completed as i32 {
            progress.succeeded + progress.failed
        } else {
            progress.total_estimate
        };
        Ok(DescribeBatchOperationResponse {
            operation_type: type_from_memo(memo) as i32,
            job_id: req.job_id,
            state: state_of(info.status) as i32,
            start_time: info.start_time,
            close_time: info.close_time,
            total_operation_count: total,
            complete_operation_count: progress.succeeded,
            failure_operation_count: progress.failed,
            identity: json_string(identity),
            reason: json_string(memo.and_then(|m| m.fields.get(REASON_MEMO))),
            query: json_string(memo.and_then(|m| m.fields.get(QUERY_MEMO))),
            executions: Vec::new(),
        })
    }

    pub(super) async fn list_batches(
        &self,
        req: ListBatchOperationsRequest,
    ) -> Result<ListBatchOperationsResponse, Status> {
        if req.namespace.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        let listed = self
            .list_runs(ListWorkflowExecutionsRequest {
                namespace: req.namespace,
                page_size: req.page_size,
                next_page_token: req.next_page_token,
                query: format!("TemporalNamespaceDivision = '{BATCH_DIVISION}'"),
            })
            .await?;
        let operation_info = listed
            .executions
            .iter()
            .map(|e| BatchOperationInfo {
                job_id: e
                    .execution
                    .as_ref()
                    .map(|x| x.workflow_id.clone())
                    .unwrap_or_default(),
                state: state_of(e.status) as i32,
                start_time: e.start_time,
                close_time: e.close_time,
                operation_type: type_from_memo(e.memo.as_ref()) as i32,
            })
            .collect();
        Ok(ListBatchOperationsResponse {
            operation_info,
            next_page_token: listed.next_page_token,
        })
    }

    pub(super) async fn stop_batch(
        &self,
        req: StopBatchOperationRequest,
    ) -> Result<StopBatchOperationResponse, Status> {
        if req.job_id.is_empty() {
            return Err(invalid("JobId is not set on request."));
        }
        if req.namespace.is_empty() {
            return Err(invalid("Namespace is not set on request."));
        }
        if req.reason.is_empty() {
            return Err(invalid("Reason is not set on request."));
        }
        WorkflowService::terminate_workflow_execution(
            self,
            Request::new(TerminateWorkflowExecutionRequest {
                namespace: req.namespace,
                workflow_execution: Some(WorkflowExecution {
                    workflow_id: req.job_id,
                    run_id: String::new(),
                }),
                reason: req.reason,
                identity: req.identity,
                ..Default::default()
            }),
        )
        .await?;
        Ok(StopBatchOperationResponse {})
    }
}
