//! ResetWorkflowExecution: reads the base run's history (and the runs that followed it) and
//! hands them to the workflow's shard, which builds the new run.

use super::*;
use sundial_actors::ops::ResetWorkflow;
use sundial_engine::api::enums::v1::{ResetReapplyExcludeType, ResetReapplyType};
use sundial_engine::{Reapply, ResetParams};

/// How often a reset is retried when the workflow moved on while its history was read.
const RESET_ATTEMPTS: usize = 5;
/// Longest chain of runs after the base run that a reset follows for signals.
const MAX_LATER_RUNS: usize = 1000;

impl Frontend {
    pub(super) async fn reset_workflow_execution_impl(
        &self,
        request: Request<ResetWorkflowExecutionRequest>,
    ) -> Result<Response<ResetWorkflowExecutionResponse>, Status> {
        let req = request.into_inner();
        if req.request_id.is_empty() {
            return Err(invalid("RequestId is not set on request."));
        }
        self.check_id(&req.request_id, "RequestId")?;
        let ns = self.namespace_id(&req.namespace).await?;
        let base = self.execution_ref(&ns, &req.workflow_execution)?;
        // The deprecated reapply type is still sent by older clients: SIGNAL leaves updates
        // out, NONE both.
        #[allow(deprecated)]
        let reapply_type = req.reset_reapply_type;
        let excluded =
            |t: ResetReapplyExcludeType| req.reset_reapply_exclude_types.contains(&(t as i32));
        let reapply = Reapply {
            signals: reapply_type != ResetReapplyType::None as i32
                && !excluded(ResetReapplyExcludeType::Signal),
            updates: reapply_type != ResetReapplyType::None as i32
                && reapply_type != ResetReapplyType::Signal as i32
                && !excluded(ResetReapplyExcludeType::Update),
        };
        let params = ResetParams {
            workflow_task_finish_event_id: req.workflow_task_finish_event_id,
            reason: req.reason,
            request_id: req.request_id,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let reset = self.read_for_reset(&base, &params, reapply).await?;
            let wf = base.workflow_id.clone();
            match self
                .node
                .history
                .call(&ns, &wf, HistoryRequest::Reset(Box::new(reset)))
                .await
            {
                Ok(run_id) => {
                    return Ok(Response::new(ResetWorkflowExecutionResponse { run_id }));
                }
                Err(Error::Unavailable(_)) if attempt < RESET_ATTEMPTS => continue,
                Err(e) => return Err(to_status(e)),
            }
        }
    }

    /// Reads what a reset needs: the base run and its history, then each run that followed it.
    async fn read_for_reset(
        &self,
        base: &RunRef,
        params: &ResetParams,
        reapply: Reapply,
    ) -> Result<ResetWorkflow, Status> {
        let state = self.describe_state(base.clone()).await?;
        let finish = params.workflow_task_finish_event_id;
        if finish <= 1 || finish >= state.next_event_id {
            return Err(invalid(
                "Workflow task finish ID must be > 1 && <= workflow last event ID.",
            ));
        }
        let base_events = self.run_events(&state).await?;
        let mut later_runs = Vec::new();
        let mut next_run = state.new_execution_run_id.clone();
        while !next_run.is_empty() && later_runs.len() < MAX_LATER_RUNS {
            let run = RunRef {
                run_id: next_run,
                ..base.clone()
            };
            let later = match self.describe_state(run).await {
                Ok(s) => s,
                // A deleted run ends the chain.
                Err(status) if status.code() == tonic::Code::NotFound => break,
                Err(status) => return Err(status),
            };
            let events = self.run_events(&later).await?;
            next_run = later.new_execution_run_id.clone();
            later_runs.push((later.run_id, later.next_event_id, events));
        }
        Ok(ResetWorkflow {
            current: RunRef {
                run_id: String::new(),
                ..base.clone()
            },
            base: state,
            base_events,
            later_runs,
            params: params.clone(),
            reapply,
        })
    }

    async fn run_events(
        &self,
        state: &MutableState,
    ) -> Result<Vec<sundial_engine::api::history::v1::HistoryEvent>, Status> {
        let key = ExecutionKey {
            namespace_id: state.namespace_id.clone(),
            workflow_id: state.workflow_id.clone(),
            run_id: state.run_id.clone(),
        };
        read_events(&self.node.history, &key, 1, state.next_event_id)
            .await
            .map_err(to_status)
    }
}
