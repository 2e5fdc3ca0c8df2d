//! QueryWorkflow. The shard decides the route (`query_buffer.rs`): a query that would overtake
//! pending events waits for the next workflow task and is answered in its completion; otherwise
//! (or once unblocked) it goes straight to the worker as a legacy query task, answered through
//! RespondQueryTaskCompleted.

use sundial_actors::query_buffer::QueryRoute;
use sundial_engine::api::query::v1::WorkflowQuery;

use super::*;

/// What the worker said, by either route.
struct Answer {
    answered: bool,
    result: Option<sundial_engine::api::common::v1::Payloads>,
    error_message: String,
    failure: Option<sundial_engine::api::failure::v1::Failure>,
}

impl Frontend {
    pub(super) async fn query_workflow_impl(
        &self,
        request: Request<QueryWorkflowRequest>,
    ) -> Result<Response<QueryWorkflowResponse>, Status> {
        let timeout = poll_timeout(&request).min(Duration::from_secs(30));
        let deadline = tokio::time::Instant::now() + timeout;
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let run = self.execution_ref(&ns, &req.execution)?;
        let query = req
            .query
            .ok_or_else(|| invalid("Query is not set on request."))?;
        if query.query_type.is_empty() {
            return Err(invalid("QueryType is not set on request."));
        }
        check_blob(query.query_args.as_ref(), &self.node.history.limits())?;
        let wf = run.workflow_id.clone();
        let routed = query.clone();
        // A buffered query is answered when a workflow task carries it: the caller's deadline
        // bounds the wait (and a caller gone is forgotten by the shard).
        let routed = self.call(
            &ns,
            &wf,
            HistoryRequest::Query {
                run: run.clone(),
                query: routed,
                reject_condition: req.query_reject_condition,
            },
        );
        let route = match tokio::time::timeout_at(deadline, routed).await {
            Ok(route) => route?,
            Err(_) => return Err(Status::deadline_exceeded("query timed out")),
        };
        let answer = match route {
            QueryRoute::Rejected(status) => {
                return Ok(Response::new(QueryWorkflowResponse {
                    query_rejected: Some(QueryRejected { status }),
                    ..Default::default()
                }));
            }
            QueryRoute::Direct(state) => self.query_directly(&ns, &state, query, deadline).await?,
            QueryRoute::Answered(result) => {
                let result = *result;
                Answer {
                    answered: result.result_type == QueryResultType::Answered as i32,
                    result: result.answer,
                    error_message: result.error_message,
                    failure: result.failure,
                }
            }
            // No workflow task is left to carry it: straight to the worker now.
            QueryRoute::Unblocked => {
                let state = self.describe_state(run).await?;
                self.query_directly(&ns, &state, query, deadline).await?
            }
        };
        if answer.answered {
            return Ok(Response::new(QueryWorkflowResponse {
                query_result: answer.result,
                ..Default::default()
            }));
        }
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

    /// A legacy query task to the run's sticky worker if it has one, else to its queue; waits
    /// for RespondQueryTaskCompleted.
    async fn query_directly(
        &self,
        ns: &str,
        state: &MutableState,
        query: WorkflowQuery,
        deadline: tokio::time::Instant,
    ) -> Result<Answer, Status> {
        let query_id = uuid::Uuid::new_v4().to_string();
        let task = QueryTask {
            query_id,
            namespace_id: ns.to_string(),
            workflow_id: state.workflow_id.clone(),
            run_id: state.run_id.clone(),
            query,
            expires_ms: self.node.clock.now_ms().saturating_add(
                deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .as_millis() as i64,
            ),
        };
        let normal = state
            .started
            .as_ref()
            .and_then(|s| s.task_queue.as_ref())
            .map(|q| q.name.clone())
            .unwrap_or_default();
        let sticky = (!state.sticky_task_queue.is_empty())
            .then(|| Matching::key(ns, &state.sticky_task_queue, WORKFLOW_QUEUE));
        let normal = Matching::key(ns, &normal, WORKFLOW_QUEUE);
        let answer = self.node.matching.query_workflow(sticky, normal, task);
        match answer.await.map_err(to_status)? {
            Some(a) => Ok(Answer {
                answered: a.completed_type == QueryResultType::Answered as i32,
                result: a.query_result,
                error_message: a.error_message,
                failure: a.failure,
            }),
            None => Err(Status::deadline_exceeded("query timed out")),
        }
    }
}
