//! Queries buffered at the history shard (Temporal's query registry): a query that arrives
//! while a workflow task is pending or running, or before the first one completed, cannot go
//! straight to the worker without overtaking events. It waits in the shard and rides on the
//! next workflow task (`PollWorkflowTaskQueueResponse.queries`); the worker answers in
//! `RespondWorkflowTaskCompleted.query_results`. When a run has no workflow task left to carry
//! it (or closes), a waiting query is unblocked and the caller dispatches it directly.
//!
//! Memory only, like Temporal's registry: a buffered query holds its run in the cache, and a
//! run dropped by a failed commit unblocks its queries, whose callers then dispatch directly.

use std::collections::HashMap;

use sundial_engine::api::{
    enums::v1::{QueryRejectCondition, WorkflowExecutionStatus},
    query::v1::{WorkflowQuery, WorkflowQueryResult},
};
use sundial_engine::{Env, MutableState};
use sundial_storage::ExecutionKey;

use crate::ops::{Response, Ticket};
use crate::shard_core::ShardCore;
use crate::{Error, Result};

/// Queries one run may hold waiting for a workflow task (`history.MaxBufferedQueryCount`).
pub const MAX_BUFFERED_QUERIES: usize = 1;
/// A run whose workflow task has failed this many times in a row refuses queries
/// (Temporal's failQueryWorkflowTaskAttemptCount).
const FAILING_TASK_ATTEMPTS: i32 = 3;

/// How a query reaches the worker, or its answer.
#[derive(Debug)]
pub enum QueryRoute {
    /// The reject condition matched; the run's `WorkflowExecutionStatus`.
    Rejected(i32),
    /// Dispatch it directly to the worker (a legacy query task) for this run.
    Direct(Box<MutableState>),
    /// It was buffered, and the worker answered it on a workflow task.
    Answered(Box<WorkflowQueryResult>),
    /// It was buffered, and no workflow task is left to carry it: dispatch it directly.
    Unblocked,
}

/// A query waiting in a run for a workflow task, answered on its caller's ticket.
pub(crate) struct BufferedQuery {
    id: String,
    query: WorkflowQuery,
    ticket: Ticket,
}

/// The buffered queries of the shard's runs.
pub(crate) type QueryBuffers = HashMap<ExecutionKey, Vec<BufferedQuery>>;

impl ShardCore {
    /// QueryWorkflow: rejects, sends straight to the worker, or buffers (see the module doc);
    /// `None` when buffered, to be answered later on `ticket`.
    pub(crate) fn route_query(
        &mut self,
        key: &ExecutionKey,
        ticket: Ticket,
        query: WorkflowQuery,
        reject_condition: i32,
        env: &Env,
    ) -> Result<Option<QueryRoute>> {
        let wf = self.workflow_mut(key).ok_or_else(|| {
            Error::NotFound(format!("workflow not found for ID: {}", key.workflow_id))
        })?;
        let state = &wf.state;
        let status = WorkflowExecutionStatus::try_from(state.status).unwrap_or_default();
        let running = status == WorkflowExecutionStatus::Running;
        let reject = match QueryRejectCondition::try_from(reject_condition).unwrap_or_default() {
            QueryRejectCondition::NotOpen => !running,
            QueryRejectCondition::NotCompletedCleanly => {
                !running && status != WorkflowExecutionStatus::Completed
            }
            _ => false,
        };
        if reject {
            return Ok(Some(QueryRoute::Rejected(state.status)));
        }
        let completed_a_task = state.last_completed_wft_started_event_id > 0;
        if !running && !completed_a_task {
            return Err(Error::WorkflowNotReady(
                "Workflow execution closed before WorkflowTaskStarted event".into(),
            ));
        }
        if running && !completed_a_task && state.workflow_task.is_none() {
            // Waiting out a start delay or backoff: no task will carry the query in time.
            let backoff_ends = state.execution_time_ms;
            if backoff_ends > env.now_ms + 30_000 {
                return Err(Error::WorkflowNotReady(
                    "Workflow task is not scheduled yet.".into(),
                ));
            }
        }
        if state.workflow_task_attempt >= FAILING_TASK_ATTEMPTS {
            return Err(Error::WorkflowNotReady(
                "Unable to query workflow due to Workflow Task in failed state.".into(),
            ));
        }
        if completed_a_task && (!running || state.workflow_task.is_none()) {
            return Ok(Some(QueryRoute::Direct(Box::new(state.clone()))));
        }
        let buffer = self.query_buffers.entry(key.clone()).or_default();
        if buffer.len() >= MAX_BUFFERED_QUERIES {
            return Err(Error::ResourceExhausted(
                "consistent query buffer is full, this may be caused by too many queries and workflow not able to process query fast enough".into(),
            ));
        }
        buffer.push(BufferedQuery {
            id: uuid::Uuid::new_v4().to_string(),
            query,
            ticket,
        });
        Ok(None)
    }

    /// The queries a workflow task of this run carries.
    pub(crate) fn buffered_queries(&self, key: &ExecutionKey) -> HashMap<String, WorkflowQuery> {
        self.query_buffers
            .get(key)
            .into_iter()
            .flatten()
            .map(|q| (q.id.clone(), q.query.clone()))
            .collect()
    }

    /// Answers the buffered queries a completed workflow task has results for.
    pub(crate) fn answer_queries(
        &mut self,
        key: &ExecutionKey,
        results: HashMap<String, WorkflowQueryResult>,
    ) {
        let Some(buffer) = self.query_buffers.get_mut(key) else {
            return;
        };
        let (answered, waiting): (Vec<_>, Vec<_>) = std::mem::take(buffer)
            .into_iter()
            .partition(|q| results.contains_key(&q.id));
        *buffer = waiting;
        let mut results = results;
        for q in answered {
            if let Some(result) = results.remove(&q.id) {
                let answer = QueryRoute::Answered(Box::new(result));
                self.answer(q.ticket, Ok(Response::Query(answer)));
            }
        }
    }

    /// True when some run holds buffered queries.
    pub fn has_buffered_queries(&self) -> bool {
        !self.query_buffers.is_empty()
    }

    /// Forgets the buffered queries whose caller went away.
    pub fn forget_queries(&mut self, gone: impl Fn(Ticket) -> bool) {
        self.query_buffers.retain(|_, buffer| {
            buffer.retain(|q| !gone(q.ticket));
            !buffer.is_empty()
        });
    }

    /// Unblocks the queries of runs that have no workflow task left to carry them (closed, or
    /// nothing pending).
    pub(crate) fn settle_queries(&mut self) {
        if self.query_buffers.is_empty() {
            return;
        }
        let keys: Vec<ExecutionKey> = self.query_buffers.keys().cloned().collect();
        for key in keys {
            // A run that has not completed its first task yet will get one (after any backoff).
            let carried = self.workflow_mut(&key).is_some_and(|wf| {
                wf.is_open()
                    && (wf.state.workflow_task.is_some()
                        || wf.state.last_completed_wft_started_event_id == 0)
            });
            if !carried && let Some(buffer) = self.query_buffers.remove(&key) {
                for q in buffer {
                    self.answer(q.ticket, Ok(Response::Query(QueryRoute::Unblocked)));
                }
            }
        }
    }
}
