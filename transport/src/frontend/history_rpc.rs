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
        let token = page_token(&req.next_page_token, &mut run)?;
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

impl Frontend {
    /// GetWorkflowExecutionHistoryReverse: the run's events newest first, a page at a time; the
    /// token carries the first event id of the last page (the next page ends before it).
    pub(super) async fn get_workflow_execution_history_reverse_impl(
        &self,
        request: Request<GetWorkflowExecutionHistoryReverseRequest>,
    ) -> Result<Response<GetWorkflowExecutionHistoryReverseResponse>, Status> {
        let req = request.into_inner();
        let ns = self.namespace_id(&req.namespace).await?;
        let mut run = self.execution_ref(&ns, &req.execution)?;
        let token = page_token(&req.next_page_token, &mut run)?;
        let state = self.describe_state(run.clone()).await?;
        let end = token.map_or(state.next_event_id, |t| {
            t.next_event_id.min(state.next_event_id)
        });
        let key = ExecutionKey {
            namespace_id: ns,
            workflow_id: run.workflow_id,
            run_id: state.run_id.clone(),
        };
        // As Temporal: a page is the last `maximum_page_size` batches (whole transactions of
        // events), not that many events.
        let batches = page_size(req.maximum_page_size) as usize;
        let page = read_batches_before(&self.node.history, &key, end, batches)
            .await
            .map_err(to_status)?;
        let first = page
            .first()
            .and_then(|batch| batch.first())
            .map_or(1, |e| e.event_id);
        let events: Vec<_> = page
            .into_iter()
            .rev()
            .flat_map(|b| b.into_iter().rev())
            .collect();
        let next_page_token = if first > 1 {
            HistoryToken {
                run_id: state.run_id,
                next_event_id: first,
                ..Default::default()
            }
            .encode_to_vec()
        } else {
            Vec::new()
        };
        Ok(Response::new(GetWorkflowExecutionHistoryReverseResponse {
            history: Some(HistoryMessage { events }),
            next_page_token,
        }))
    }
}

/// The history page token of a request, if any; the run it names becomes the run read (a run
/// id given with the request must be the same).
fn page_token(token: &[u8], run: &mut RunRef) -> Result<Option<HistoryToken>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let t = HistoryToken::decode(token).map_err(|_| invalid("Invalid NextPageToken."))?;
    if !run.run_id.is_empty() && run.run_id != t.run_id {
        return Err(invalid("Invalid NextPageToken: run id mismatch."));
    }
    run.run_id = t.run_id.clone();
    Ok(Some(t))
}
