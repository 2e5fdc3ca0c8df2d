//! StartWorkflowExecution and SignalWithStartWorkflowExecution: validation and the start op.

use super::*;
use sundial_actors::ops::StartOutcome;

/// Validates a start request and turns it into the start op's input.
pub(super) fn start_workflow(
    ns: &str,
    mut req: StartWorkflowExecutionRequest,
    limits: &sundial_engine::Limits,
    custom_search_attributes: Option<&sundial_engine::search_attributes::SearchAttributeTypes>,
) -> Result<StartWorkflow, Status> {
    if req.workflow_id.is_empty() {
        return Err(invalid("WorkflowId is not set on request."));
    }
    if !req.completion_callbacks.is_empty() {
        // Nothing would ever call them back: refused rather than dropped.
        return Err(Status::unimplemented(
            "Workflow completion callbacks (Nexus) are not supported by this server.",
        ));
    }
    if req.workflow_id.len() as i64 > limits.max_id_length {
        return Err(invalid(format!(
            "WorkflowId exceeds maximum allowed length ({}/{})",
            req.workflow_id.len(),
            limits.max_id_length
        )));
    }
    check_blob(req.input.as_ref(), limits)?;
    let too_long = |s: &str| s.len() as i64 > limits.max_id_length;
    if req
        .workflow_type
        .as_ref()
        .is_some_and(|t| too_long(&t.name))
    {
        return Err(invalid("WorkflowType length exceeds limit."));
    }
    if let Some(custom) = custom_search_attributes {
        sundial_engine::search_attributes::check_names(
            req.search_attributes.as_ref(),
            custom,
            &req.namespace,
        )
        .map_err(invalid)?;
    }
    limits
        .check_search_attributes(req.search_attributes.as_ref())
        .map_err(invalid)?;
    if req.memo.as_ref().map_or(0, prost::Message::encoded_len) as i64 > limits.memo_size_error {
        return Err(invalid("Memo size exceeds limit."));
    }
    if req.workflow_type.as_ref().is_none_or(|t| t.name.is_empty()) {
        return Err(invalid("WorkflowType is not set on request."));
    }
    task_queue_within(&req.task_queue, limits.max_id_length)?;
    // In Temporal's order (prepareStartWorkflowRequest), with its messages.
    check_retry_policy(&mut req.retry_policy)?;
    check_request_duration(&mut req.workflow_start_delay, "WorkflowStartDelaySeconds")?;
    check_request_duration(
        &mut req.workflow_execution_timeout,
        "WorkflowExecutionTimeoutSeconds",
    )?;
    check_request_duration(&mut req.workflow_run_timeout, "WorkflowRunTimeoutSeconds")?;
    check_request_duration(&mut req.workflow_task_timeout, "WorkflowTaskTimeoutSeconds")?;
    check_length_within(&req.request_id, "RequestId", limits.max_id_length)?;
    let eager_identity = req.request_eager_execution.then(|| req.identity.clone());
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
    Ok(StartWorkflow {
        params: start_params(
            ns,
            &req.namespace,
            &req.workflow_id,
            &req.request_id,
            attributes,
        ),
        reuse_policy: req.workflow_id_reuse_policy,
        conflict_policy: req.workflow_id_conflict_policy,
        eager_identity,
    })
}

impl Frontend {
    pub(super) async fn start_workflow_execution_impl(
        &self,
        request: Request<StartWorkflowExecutionRequest>,
    ) -> Result<Response<StartWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let workflow_id = req.workflow_id.clone();
        let custom = self.node.history.search_attributes(&ns);
        let start = start_workflow(&ns, req, &self.node.history.limits(), custom.as_deref())?;
        let outcome: StartOutcome = self
            .call(&ns, &workflow_id, HistoryRequest::Start(start))
            .await?;
        let eager_workflow_task = match outcome.eager {
            Some(started) => Some(
                responses::workflow_task(&self.node.history, *started, false)
                    .await
                    .map_err(to_status)?,
            ),
            None => None,
        };
        Ok(Response::new(StartWorkflowExecutionResponse {
            run_id: outcome.run_id,
            started: outcome.started,
            eager_workflow_task,
            ..Default::default()
        }))
    }

    pub(super) async fn signal_with_start_workflow_execution_impl(
        &self,
        request: Request<SignalWithStartWorkflowExecutionRequest>,
    ) -> Result<Response<SignalWithStartWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        if req.signal_name.is_empty() {
            return Err(invalid("SignalName is not set on request."));
        }
        let max_id_length = self.max_id_length();
        if req.signal_name.len() as i64 > max_id_length {
            return Err(invalid(format!(
                "signal name exceeds maximum allowed length ({}/{max_id_length})",
                req.signal_name.len()
            )));
        }
        check_blob(req.signal_input.as_ref(), &self.node.history.limits())?;
        // Temporal's ValidateSignalWithStartRequest words this one its own way.
        if req.request_id.len() as i64 > max_id_length {
            return Err(invalid(format!(
                "Request ID exceeds maximum allowed length ({}/{max_id_length})",
                req.request_id.len()
            )));
        }
        let signal = Signal {
            name: req.signal_name,
            input: req.signal_input,
            header: req.header.clone(),
            identity: req.identity.clone(),
            // As Temporal: the signal carries the request's id (a retried request is one signal).
            request_id: req.request_id.clone(),
            skip_generate_workflow_task: false,
            external_workflow_execution: None,
        };
        let workflow_id = req.workflow_id.clone();
        let start = start_workflow(
            &ns,
            StartWorkflowExecutionRequest {
                namespace: req.namespace,
                workflow_id: req.workflow_id,
                workflow_type: req.workflow_type,
                task_queue: req.task_queue,
                input: req.input,
                workflow_execution_timeout: req.workflow_execution_timeout,
                workflow_run_timeout: req.workflow_run_timeout,
                workflow_task_timeout: req.workflow_task_timeout,
                identity: req.identity,
                request_id: req.request_id,
                workflow_id_reuse_policy: req.workflow_id_reuse_policy,
                workflow_id_conflict_policy: req.workflow_id_conflict_policy,
                retry_policy: req.retry_policy,
                cron_schedule: req.cron_schedule,
                memo: req.memo,
                search_attributes: req.search_attributes,
                header: req.header,
                workflow_start_delay: req.workflow_start_delay,
                priority: req.priority,
                ..Default::default()
            },
            &self.node.history.limits(),
            self.node.history.search_attributes(&ns).as_deref(),
        )?;
        let outcome: StartOutcome = self
            .call(
                &ns,
                &workflow_id,
                HistoryRequest::SignalWithStart(start, signal),
            )
            .await?;
        Ok(Response::new(SignalWithStartWorkflowExecutionResponse {
            run_id: outcome.run_id,
            started: outcome.started,
            ..Default::default()
        }))
    }
}
