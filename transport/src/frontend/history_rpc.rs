//! GetWorkflowExecutionHistory: paging, long poll and the close-event filter.

use super::*;

impl Frontend {
    pub(super) async fn get_workflow_execution_history_impl(
        &self,
        request: Request<GetWorkflowExecutionHistoryRequest>,
    ) -> Result<Response<GetWorkflowExecutionHistoryResponse>, Status> {
        let req = request.into_inner();
        if req.wait_new_event {
            crate::telemetry::note_operation("PollWorkflowExecutionHistory");
        }
        let ns = self.namespace_id(&req.namespace).await?;
        let mut run = self.execution_ref(&ns, &req.execution)?;
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
        if let Some(t) = token.as_ref().filter(|t| t.end_event_id > 0) {
            return self
                .workflow_task_page(&ns, &run, t, req.maximum_page_size)
                .await;
        }
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
                let watch = self.call(
                    &ns,
                    &run.workflow_id,
                    HistoryRequest::Watch {
                        run: r,
                        next_event_id: wait_for,
                    },
                );
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
                ..Default::default()
            };
            return Ok(Response::new(GetWorkflowExecutionHistoryResponse {
                history: Some(HistoryMessage::default()),
                next_page_token: token.encode_to_vec(),
                ..Default::default()
            }));
        }
        let page = page_size(req.maximum_page_size);
        let to = state.next_event_id.min(from + page);
        let events = read_events(&self.node.history, &key, from, to)
            .await
            .map_err(to_status)?;
        let more = to < state.next_event_id || (req.wait_new_event && !closed);
        let next_page_token = if more {
            HistoryToken {
                run_id: state.run_id.clone(),
                next_event_id: to,
                ..Default::default()
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
}
