//! QueryWorkflow: legacy queries dispatched to the workflow worker and answered through RespondQueryTaskCompleted.

use super::*;

impl Frontend {
    pub(super) async fn query_workflow_impl(
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
}
