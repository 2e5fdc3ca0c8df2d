//! Workflow updates at the history shard: admission through the engine, update-with-start,
//! and the callers waiting for an update to reach a lifecycle stage.
//!
//! Admitted updates and speculative workflow tasks live in the cached run only (the engine's
//! `UpdateRegistry`); nothing about them is stored. A waiter is answered after the commit that
//! got its update far enough (like `Request::Watch`), or with `Unavailable` when the run fell out of
//! the cache, since its in-memory updates went with it (the caller retries, as Temporal's
//! callers retry `WorkflowUpdateAbortedErr`).

use std::collections::{HashMap, HashSet};

use sundial_engine::api::{
    enums::v1::{UpdateWorkflowExecutionLifecycleStage as Stage, WorkflowIdConflictPolicy},
    update::v1::Request,
};
use sundial_engine::{Env, UpdateRefusal, UpdateStatus};
use sundial_storage::ExecutionKey;

use crate::Error;
use crate::ops::{Response, RunRef, StartOutcome, StartWorkflow, Ticket};
use crate::shard_core::{Answer, ShardCore};

/// A workflow-update request to a history shard.
#[derive(Debug, Clone)]
pub enum UpdateRequest {
    /// UpdateWorkflowExecution: admit the update, then wait for `stage`.
    Update {
        /// The run (empty run id: the current run).
        run: RunRef,
        /// When set, the run must belong to the chain started by this run.
        first_execution_run_id: String,
        /// The update request (validated, with its update id).
        request: Request,
        /// `UpdateWorkflowExecutionLifecycleStage` wire value to wait for.
        stage: i32,
    },
    /// PollWorkflowExecutionUpdate: wait for a known update to reach `stage`.
    Poll {
        /// The run (empty run id: the current run).
        run: RunRef,
        /// The update.
        update_id: String,
        /// `UpdateWorkflowExecutionLifecycleStage` wire value to wait for (unspecified or
        /// admitted: answer at once).
        stage: i32,
    },
    /// ExecuteMultiOperation [Start, Update]: start the workflow unless it can take the update
    /// as it is, then admit the update and wait for `stage`. Answered twice: the start's
    /// [`StartOutcome`] on the request's ticket once committed, the [`UpdateAnswer`] on the
    /// next ticket once the stage is reached.
    UpdateWithStart {
        /// The start half.
        start: Box<StartWorkflow>,
        /// The update request.
        request: Request,
        /// `UpdateWorkflowExecutionLifecycleStage` wire value to wait for.
        stage: i32,
    },
}

impl UpdateRequest {
    /// The run the request needs loaded.
    pub fn run(&self) -> RunRef {
        match self {
            UpdateRequest::Update { run, .. } | UpdateRequest::Poll { run, .. } => run.clone(),
            UpdateRequest::UpdateWithStart { start, .. } => RunRef {
                namespace_id: start.params.namespace_id.clone(),
                workflow_id: start.params.workflow_id.clone(),
                run_id: String::new(),
            },
        }
    }
}

/// What a caller waiting on an update learns.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateAnswer {
    /// The update reached the stage asked for, or, when none was asked for, this is the
    /// furthest it got. An aborted update is reported here too.
    Reached {
        /// The run that holds the update.
        run_id: String,
        /// How far it got.
        status: UpdateStatus,
    },
    /// The update was refused at admission.
    Refused(UpdateRefusal),
    /// The run does not know this update.
    NotFound,
}

struct Waiter {
    update_id: String,
    stage: Stage,
    ticket: Ticket,
}

/// The callers waiting on updates, by run.
#[derive(Default)]
pub struct UpdateWaiters {
    waiting: HashMap<ExecutionKey, Vec<Waiter>>,
    /// Runs that hold updates in memory or have waiters: looked at after every commit.
    runs: HashSet<ExecutionKey>,
}

impl UpdateWaiters {
    fn add(&mut self, key: ExecutionKey, update_id: String, stage: i32, ticket: Ticket) {
        self.runs.insert(key.clone());
        self.waiting.entry(key).or_default().push(Waiter {
            update_id,
            stage: Stage::try_from(stage).unwrap_or(Stage::Unspecified),
            ticket,
        });
    }

    /// True when callers wait on the run's updates or it holds updates to look at.
    pub fn holds(&self, key: &ExecutionKey) -> bool {
        self.runs.contains(key) || self.waiting.contains_key(key)
    }

    /// Drops waiters whose caller went away.
    pub fn forget(&mut self, gone: impl Fn(Ticket) -> bool) {
        self.waiting.retain(|_, list| {
            list.retain(|w| !gone(w.ticket));
            !list.is_empty()
        });
    }
}

fn update_id_of(request: &Request) -> String {
    request
        .meta
        .as_ref()
        .map(|m| m.update_id.clone())
        .unwrap_or_default()
}

/// Applies an update request; replies wait for the commit.
pub(crate) fn apply(core: &mut ShardCore, ticket: Ticket, request: UpdateRequest, env: &Env) {
    match request {
        UpdateRequest::Update {
            run,
            first_execution_run_id,
            request,
            stage,
        } => match core.resolve(&run) {
            Ok(key) => admit(
                core,
                key,
                request,
                &first_execution_run_id,
                stage,
                ticket,
                env,
            ),
            Err(e) => core.answer(ticket, Err(e)),
        },
        UpdateRequest::Poll {
            run,
            update_id,
            stage,
        } => {
            let known = core.resolve(&run).and_then(|key| {
                let wf = core
                    .workflow_mut(&key)
                    .ok_or_else(|| Error::NotFound("workflow not found".into()))?;
                Ok((wf.update_status(&update_id).is_some(), key))
            });
            match known {
                Ok((true, key)) => core.update_waiters.add(key, update_id, stage, ticket),
                Ok((false, _)) => core.answer(ticket, Ok(Response::Update(UpdateAnswer::NotFound))),
                Err(e) => core.answer(ticket, Err(e)),
            }
        }
        UpdateRequest::UpdateWithStart {
            start,
            request,
            stage,
        } => update_with_start(core, *start, request, stage, ticket, env),
    }
}

/// Admits an update on a cached run and registers its waiter.
fn admit(
    core: &mut ShardCore,
    key: ExecutionKey,
    request: Request,
    first_execution_run_id: &str,
    stage: i32,
    ticket: Ticket,
    env: &Env,
) {
    let update_id = update_id_of(&request);
    let admitted = core.with_run(&key, env, |wf| {
        Ok(wf.admit_update(request, first_execution_run_id, env))
    });
    match admitted {
        Ok(Ok(())) => core.update_waiters.add(key, update_id, stage, ticket),
        Ok(Err(UpdateRefusal::WrongFirstRun)) => core.answer(
            ticket,
            Err(Error::NotFound(format!(
                "workflow not found for ID: {}",
                key.workflow_id
            ))),
        ),
        Ok(Err(refusal)) => {
            core.answer(ticket, Ok(Response::Update(UpdateAnswer::Refused(refusal))))
        }
        Err(e) => core.answer(ticket, Err(e)),
    }
}

/// Update-with-start: the update goes to the current run when that run can take it (its
/// outcome is known, the start is a retry of the one that made it, the update is known, or the
/// conflict policy is USE_EXISTING); otherwise the workflow is started (the start's id-reuse and
/// conflict rules apply) and the update goes to the new run's first workflow task. The start's
/// outcome is answered on `ticket`, the update's on the next one.
fn update_with_start(
    core: &mut ShardCore,
    start: StartWorkflow,
    request: Request,
    stage: i32,
    ticket: Ticket,
    env: &Env,
) {
    let update_ticket = ticket.next();
    let current = RunRef {
        namespace_id: start.params.namespace_id.clone(),
        workflow_id: start.params.workflow_id.clone(),
        run_id: String::new(),
    };
    let update_id = update_id_of(&request);
    if let Ok(key) = core.resolve(&current)
        && let Some(wf) = core.workflow_mut(&key)
    {
        let completed = matches!(
            wf.update_status(&update_id),
            Some(UpdateStatus::Outcome(_) | UpdateStatus::CompletedAt(_))
        );
        let takes_update = wf.is_open()
            && ((!start.params.request_id.is_empty()
                && wf.state.start_request_id == start.params.request_id)
                || wf.update_state(&update_id).is_some()
                || start.conflict_policy == WorkflowIdConflictPolicy::UseExisting as i32);
        if completed || takes_update {
            let outcome = StartOutcome {
                run_id: key.run_id.clone(),
                started: false,
                eager: None,
            };
            core.answer(ticket, Ok(Response::Started(outcome)));
            if completed {
                core.update_waiters
                    .add(key, update_id, stage, update_ticket);
            } else {
                admit(core, key, request, "", stage, update_ticket, env);
            }
            return;
        }
    }
    match core.start(start, None, env) {
        Ok(outcome) => {
            let key = ExecutionKey {
                namespace_id: current.namespace_id,
                workflow_id: current.workflow_id,
                run_id: outcome.run_id.clone(),
            };
            core.answer(ticket, Ok(Response::Started(outcome)));
            admit(core, key, request, "", stage, update_ticket, env);
        }
        Err(e) => {
            core.answer(ticket, Err(e));
            core.answer(
                update_ticket,
                Err(Error::Unavailable("Operation was aborted.".into())),
            );
        }
    }
}

/// The stage a status stands for; `None` for an update that will not get further.
fn stage_of(status: &UpdateStatus) -> Option<Stage> {
    match status {
        UpdateStatus::Admitted => Some(Stage::Admitted),
        UpdateStatus::Accepted => Some(Stage::Accepted),
        UpdateStatus::Outcome(_) | UpdateStatus::CompletedAt(_) => Some(Stage::Completed),
        UpdateStatus::Aborted(_) => None,
    }
}

/// After a commit: answers the waiters whose update got far enough (or will get no further),
/// and forgets updates that ended without a trace once they were reported.
pub(crate) fn wake(core: &mut ShardCore) -> Vec<Answer> {
    let mut out = Vec::new();
    let keys: Vec<ExecutionKey> = core.update_waiters.runs.iter().cloned().collect();
    for key in keys {
        let waiters = core.update_waiters.waiting.remove(&key).unwrap_or_default();
        let Some(wf) = core.workflow_mut(&key) else {
            for w in waiters {
                let aborted = Error::Unavailable("workflow update was aborted".into());
                out.push((w.ticket, Err(aborted)));
            }
            core.update_waiters.runs.remove(&key);
            continue;
        };
        let mut keep = Vec::new();
        for w in waiters {
            let answer = match wf.update_status(&w.update_id) {
                None => Some(UpdateAnswer::NotFound),
                Some(status) => match stage_of(&status) {
                    Some(reached) if (reached as i32) < (w.stage as i32) => None,
                    _ => Some(UpdateAnswer::Reached {
                        run_id: key.run_id.clone(),
                        status,
                    }),
                },
            };
            match answer {
                Some(answer) => out.push((w.ticket, Ok(Response::Update(answer)))),
                None => keep.push(w),
            }
        }
        wf.forget_finished_updates();
        let in_memory = wf.has_updates_in_memory();
        if !keep.is_empty() {
            core.update_waiters.waiting.insert(key, keep);
        } else if !in_memory {
            core.update_waiters.runs.remove(&key);
        }
    }
    out
}
