//! Task polls and workflow-task completion: matching hands a task over, history records its start, and the response is built.

use super::*;
use sundial_actors::ops::CompletedWorkflowTask;
use sundial_actors::{Poll, PolledWorkflowTask};

impl Frontend {
    pub(super) async fn poll_workflow_task_queue_impl(
        &self,
        request: Request<PollWorkflowTaskQueueRequest>,
    ) -> Result<Response<PollWorkflowTaskQueueResponse>, Status> {
        let timeout = poll_timeout(&request);
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        check_length_within(&req.identity, "Identity", self.max_id_length())?;
        let queue = self.task_queue_name(&req.task_queue)?;
        let sticky = req
            .task_queue
            .as_ref()
            .is_some_and(|q| q.kind == TaskQueueKind::Sticky as i32);
        let key = Matching::key(&ns, &queue, WORKFLOW_QUEUE);
        #[allow(deprecated)]
        let poll = Poll {
            identity: req.identity.clone(),
            build_id: poller_build_id(req.worker_version_capabilities.as_ref()),
            queue: queue.clone(),
            sticky,
            timeout,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let poll = Poll {
                timeout: left,
                ..poll.clone()
            };
            let polled = self.node.matching.poll_workflow_task(key.clone(), poll);
            let Some(polled) = polled.await.map_err(to_status)? else {
                return Ok(Response::new(PollWorkflowTaskQueueResponse::default()));
            };
            match polled {
                PolledWorkflowTask::Started(started) => {
                    let response = responses::workflow_task(&self.node.history, *started, sticky)
                        .await
                        .map_err(to_status)?;
                    return Ok(Response::new(response));
                }
                PolledWorkflowTask::Query(query) => {
                    let query = *query;
                    let run = RunRef {
                        namespace_id: query.namespace_id.clone(),
                        workflow_id: query.workflow_id.clone(),
                        run_id: query.run_id.clone(),
                    };
                    let Ok(state) = self.describe_state(run).await else {
                        continue;
                    };
                    // The sticky worker answers from its cache: no events. A normal-queue
                    // worker replays the whole history.
                    let from = if sticky { state.next_event_id } else { 1 };
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

    pub(super) async fn poll_activity_task_queue_impl(
        &self,
        request: Request<PollActivityTaskQueueRequest>,
    ) -> Result<Response<PollActivityTaskQueueResponse>, Status> {
        let timeout = poll_timeout(&request);
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        check_length_within(&req.identity, "Identity", self.max_id_length())?;
        let queue = self.task_queue_name(&req.task_queue)?;
        let key = Matching::key(&ns, &queue, ACTIVITY_QUEUE);
        #[allow(deprecated)]
        let poll = Poll {
            identity: req.identity.clone(),
            build_id: poller_build_id(req.worker_version_capabilities.as_ref()),
            queue,
            sticky: false,
            timeout,
        };
        let polled = self.node.matching.poll_activity_task(key, poll);
        Ok(Response::new(match polled.await.map_err(to_status)? {
            Some(started) => {
                responses::activity_task(&req.namespace, &started.state, &started.activity)
            }
            None => PollActivityTaskQueueResponse::default(),
        }))
    }

    pub(super) async fn respond_workflow_task_completed_impl(
        &self,
        request: Request<RespondWorkflowTaskCompletedRequest>,
    ) -> Result<Response<RespondWorkflowTaskCompletedResponse>, Status> {
        let req = request.into_inner();
        let token = decode_token(&req.task_token)?;
        check_length_within(&req.identity, "Identity", self.max_id_length())?;
        let namespace = req.namespace.clone();
        let sticky_poll = req
            .sticky_attributes
            .as_ref()
            .is_some_and(|s| s.worker_task_queue.is_some());
        let run = run_of(&token);
        let completed: CompletedWorkflowTask = self
            .call(
                &token.namespace_id,
                &token.workflow_id,
                HistoryRequest::CompleteWorkflowTask {
                    run,
                    scheduled_event_id: token.scheduled_event_id,
                    attempt: token.attempt,
                    started: (token.started_event_id, token.started_time_ms),
                    request: Box::new(req),
                },
            )
            .await?;
        if let Some(rejected) = completed.outcome.rejected {
            // The task failed instead (and is recorded so); the worker learns why, in the
            // failure's words (as Temporal answers).
            return Err(invalid(rejected.failure_message()));
        }
        let mut response = RespondWorkflowTaskCompletedResponse {
            reset_history_event_id: completed.outcome.reset_history_event_id,
            ..Default::default()
        };
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
                queries: completed.queries.clone(),
            };
            response.workflow_task = Some(
                responses::workflow_task(&self.node.history, started, sticky_poll)
                    .await
                    .map_err(to_status)?,
            );
        }
        Ok(Response::new(response))
    }
}

/// The build id a poller reports (Temporal stamps it on the task's started event).
#[allow(deprecated)]
fn poller_build_id(
    capabilities: Option<&sundial_engine::api::common::v1::WorkerVersionCapabilities>,
) -> String {
    capabilities.map(|c| c.build_id.clone()).unwrap_or_default()
}
