//! Workflow updates (reference §2.3 "Speculative WFTs for Update"; Temporal's
//! `docs/architecture/workflow-update.md` and `message-protocol.md`).
//!
//! An update is *admitted* in memory only: the request waits in the run's [`UpdateRegistry`]
//! until a workflow task carries it to the worker as a protocol message (*sent*). The worker
//! answers with messages: a rejection leaves no trace at all, an acceptance writes
//! WorkflowExecutionUpdateAccepted (holding the request), a response writes
//! WorkflowExecutionUpdateCompleted (holding the outcome). From acceptance on the update is
//! in history, and the mutable state keeps only pointers to its events ([`UpdateInfo`]).
//!
//! [`UpdateState::on`] is the transition table; an input it does not allow is an
//! [`InvalidTransition`], which fails the workflow task with
//! BAD_UPDATE_WORKFLOW_EXECUTION_MESSAGE.

use prost::Message as _;
use temporalio_protos::temporal::api::{
    failure::v1::{ApplicationFailureInfo, Failure, failure::FailureInfo},
    protocol::v1::{Message, message::SequencingId},
    update::v1::{Outcome, Request, outcome},
};

use crate::workflow::{Env, Workflow};
use crate::workflow_task::WorkflowTaskStart;

mod protocol;

/// A workflow task on this attempt or later refuses new updates (Temporal fails them fast).
pub const FAIL_UPDATE_WORKFLOW_TASK_ATTEMPT: i32 = 3;

const TYPE_URL_PREFIX: &str = "type.googleapis.com/";
const REQUEST_TYPE: &str = "temporal.api.update.v1.Request";
const ACCEPTANCE_TYPE: &str = "temporal.api.update.v1.Acceptance";
const REJECTION_TYPE: &str = "temporal.api.update.v1.Rejection";
const RESPONSE_TYPE: &str = "temporal.api.update.v1.Response";

/// What a run stores about an update once it is in history: pointers to its events.
#[derive(Clone, PartialEq, prost::Message)]
pub struct UpdateInfo {
    /// Its WorkflowExecutionUpdateAccepted event id.
    #[prost(int64, tag = "1")]
    pub accepted_event_id: i64,
    /// Its WorkflowExecutionUpdateCompleted event id (0 while in flight).
    #[prost(int64, tag = "2")]
    pub completed_event_id: i64,
    /// Its WorkflowExecutionUpdateAdmitted event id, for an update admitted in history (one a
    /// reset re-applied): the worker reads it from there and answers it; 0 otherwise.
    #[prost(int64, tag = "3")]
    pub admitted_event_id: i64,
}

/// Where an update is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateState {
    /// Known to the server (memory only), not yet handed to a worker.
    Admitted,
    /// Delivered on a workflow task; the worker has not answered yet.
    Sent,
    /// The worker accepted it: WorkflowExecutionUpdateAccepted is in history.
    Accepted,
    /// The worker answered it: WorkflowExecutionUpdateCompleted is in history.
    Completed,
    /// The worker's validator (or the server, for an unanswered one) rejected it: no trace.
    Rejected,
    /// The run closed before the update was accepted.
    Aborted,
}

/// What can happen to an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateInput {
    /// A workflow task carries it to a worker (again, if the last one failed).
    Send,
    /// An Acceptance message.
    Accept,
    /// A Rejection message, or the server rejecting an update the worker ignored.
    Reject,
    /// A Response message (the outcome).
    Respond,
    /// The run closed.
    Abort,
}

/// Why an update ended without an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// The run closed for good.
    WorkflowCompleted,
    /// The run closed into a new run (continue-as-new, retry): the update may go there.
    WorkflowContinuing,
}

/// An input the update's state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid state transition attempted for Update {update_id}: received {input:?} message while in state {state:?}"
)]
pub struct InvalidTransition {
    /// The update.
    pub update_id: String,
    /// What was received.
    pub input: UpdateInput,
    /// The state it was in.
    pub state: UpdateState,
}

impl UpdateState {
    /// The transition table: the state after `input`, or `None` when `input` is not allowed.
    pub fn on(self, input: UpdateInput) -> Option<UpdateState> {
        use UpdateInput as I;
        use UpdateState as S;
        match (self, input) {
            (S::Admitted | S::Sent, I::Send) => Some(S::Sent),
            (S::Admitted | S::Sent, I::Accept) => Some(S::Accepted),
            (S::Admitted | S::Sent, I::Reject) => Some(S::Rejected),
            (S::Admitted | S::Sent | S::Accepted, I::Abort) => Some(S::Aborted),
            (S::Accepted, I::Respond) => Some(S::Completed),
            _ => None,
        }
    }

    /// [`UpdateState::on`] as a result naming the update.
    pub fn next(
        self,
        update_id: &str,
        input: UpdateInput,
    ) -> Result<UpdateState, InvalidTransition> {
        self.on(input).ok_or_else(|| InvalidTransition {
            update_id: update_id.to_string(),
            input,
            state: self,
        })
    }
}

/// How far an update got, as a caller waiting on it sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum UpdateStatus {
    /// Known to the server, not accepted yet.
    Admitted,
    /// Accepted; no outcome yet.
    Accepted,
    /// Done, with this outcome (a rejection, or a failure because the run closed first).
    Outcome(Box<Outcome>),
    /// Done; the outcome is in the WorkflowExecutionUpdateCompleted event with this id.
    CompletedAt(i64),
    /// Dropped before it was accepted.
    Aborted(AbortReason),
}

/// Why an update request is refused at admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateRefusal {
    /// `first_execution_run_id` names another chain of runs.
    WrongFirstRun,
    /// The run is closed and never knew this update.
    WorkflowCompleted,
    /// The workflow task keeps failing (attempt >= 3).
    WorkflowTaskFailing,
    /// `history.maxInFlightUpdates` (the limit) reached.
    TooManyInFlight(i64),
    /// `history.maxTotalUpdates` (the limit) reached.
    TooManyTotal(i64),
}

/// An update the server holds in memory: admitted, sent, or rejected/aborted and waiting to be
/// reported.
#[derive(Debug, Clone)]
struct InFlight {
    id: String,
    request: Request,
    state: UpdateState,
    /// The rejection, once rejected.
    failure: Option<Failure>,
}

/// The run's updates that are not (or never will be) in history. Memory only: a run loaded
/// from the store starts with an empty registry, as Temporal's does.
#[derive(Debug, Clone, Default)]
pub struct UpdateRegistry {
    /// In admission order (the order they are delivered in).
    in_flight: Vec<InFlight>,
    /// The protocol messages of the completion being applied, not yet processed.
    inbox: Vec<Message>,
}

impl UpdateRegistry {
    fn get(&self, id: &str) -> Option<&InFlight> {
        self.in_flight.iter().find(|u| u.id == id)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut InFlight> {
        self.in_flight.iter_mut().find(|u| u.id == id)
    }

    fn remove(&mut self, id: &str) -> Option<InFlight> {
        let pos = self.in_flight.iter().position(|u| u.id == id)?;
        Some(self.in_flight.remove(pos))
    }

    /// True when an admitted update waits for a workflow task to carry it.
    pub fn has_unsent(&self) -> bool {
        self.in_flight
            .iter()
            .any(|u| u.state == UpdateState::Admitted)
    }

    /// True while any update is held in memory.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Keeps the protocol messages of a completion for its commands to refer to.
    pub(crate) fn receive_messages(&mut self, messages: &[Message]) {
        self.inbox = messages.to_vec();
    }

    fn pending(&self) -> usize {
        self.in_flight
            .iter()
            .filter(|u| matches!(u.state, UpdateState::Admitted | UpdateState::Sent))
            .count()
    }
}

/// The failure a rejection by the server carries (Temporal's `unprocessedUpdateFailure`).
pub fn unprocessed_update_failure() -> Failure {
    server_application_failure(
        "Workflow Update is rejected because it wasn't processed by worker. Probably, Workflow Update is not supported by the worker.",
        "UnprocessedUpdate",
    )
}

/// The outcome of an accepted update whose run closed first (Temporal's
/// `AcceptedUpdateCompletedWorkflowFailure`).
pub fn accepted_update_completed_workflow_failure() -> Failure {
    server_application_failure(
        "Workflow Update failed because the Workflow completed before the Update completed.",
        "AcceptedUpdateCompletedWorkflow",
    )
}

fn server_application_failure(message: &str, kind: &str) -> Failure {
    Failure {
        message: message.to_string(),
        source: "Server".into(),
        failure_info: Some(FailureInfo::ApplicationFailureInfo(
            ApplicationFailureInfo {
                r#type: kind.to_string(),
                non_retryable: true,
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// An update done with this failure as its outcome.
fn failed(failure: Failure) -> UpdateStatus {
    UpdateStatus::Outcome(Box::new(Outcome {
        value: Some(outcome::Value::Failure(failure)),
    }))
}

impl UpdateStatus {
    /// The failure of an outcome that is one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            UpdateStatus::Outcome(o) => match &o.value {
                Some(outcome::Value::Failure(f)) => Some(f),
                _ => None,
            },
            _ => None,
        }
    }
}

impl Workflow {
    /// The state of an update this run knows.
    pub fn update_state(&self, update_id: &str) -> Option<UpdateState> {
        if let Some(u) = self.updates.get(update_id) {
            return Some(u.state);
        }
        self.state.updates.get(update_id).map(|info| {
            if info.completed_event_id != 0 {
                UpdateState::Completed
            } else if info.accepted_event_id != 0 {
                UpdateState::Accepted
            } else {
                // Admitted in history: every task the worker gets carries it.
                UpdateState::Sent
            }
        })
    }

    /// How far an update got, for a caller waiting on it; `None` for an update this run does
    /// not know (never admitted, or rejected and already reported).
    pub fn update_status(&self, update_id: &str) -> Option<UpdateStatus> {
        if let Some(u) = self.updates.get(update_id) {
            return Some(match u.state {
                UpdateState::Rejected => failed(u.failure.clone().unwrap_or_default()),
                _ if !self.is_open() => UpdateStatus::Aborted(self.abort_reason()),
                UpdateState::Aborted => UpdateStatus::Aborted(self.abort_reason()),
                _ => UpdateStatus::Admitted,
            });
        }
        let info = self.state.updates.get(update_id)?;
        Some(if info.completed_event_id != 0 {
            UpdateStatus::CompletedAt(info.completed_event_id)
        } else if info.accepted_event_id == 0 {
            if self.is_open() {
                UpdateStatus::Admitted
            } else {
                UpdateStatus::Aborted(self.abort_reason())
            }
        } else if self.is_open() {
            UpdateStatus::Accepted
        } else {
            failed(accepted_update_completed_workflow_failure())
        })
    }

    fn abort_reason(&self) -> AbortReason {
        if self.state.new_execution_run_id.is_empty() {
            AbortReason::WorkflowCompleted
        } else {
            AbortReason::WorkflowContinuing
        }
    }

    /// True while updates are held in memory (admitted, sent, or finished and not reported).
    pub fn has_updates_in_memory(&self) -> bool {
        !self.updates.is_empty()
    }

    /// Forgets rejected and aborted updates once their waiters were told.
    pub fn forget_finished_updates(&mut self) {
        let open = self.is_open();
        self.updates
            .in_flight
            .retain(|u| open && matches!(u.state, UpdateState::Admitted | UpdateState::Sent));
    }

    /// UpdateWorkflowExecution: admits the update (memory only). A repeated update id is not
    /// admitted twice. On an idle run a speculative workflow task carries it to the worker;
    /// otherwise the pending task does (or the next one, if a task is running).
    pub fn admit_update(
        &mut self,
        request: Request,
        first_execution_run_id: &str,
        env: &Env,
    ) -> Result<(), UpdateRefusal> {
        if !first_execution_run_id.is_empty()
            && self.started_attributes().first_execution_run_id != first_execution_run_id
        {
            return Err(UpdateRefusal::WrongFirstRun);
        }
        let update_id = request
            .meta
            .as_ref()
            .map(|m| m.update_id.clone())
            .unwrap_or_default();
        if !self.is_open() {
            return match self.update_status(&update_id) {
                Some(_) => Ok(()),
                None => Err(UpdateRefusal::WorkflowCompleted),
            };
        }
        if self.state.workflow_task_attempt >= FAIL_UPDATE_WORKFLOW_TASK_ATTEMPT {
            return Err(UpdateRefusal::WorkflowTaskFailing);
        }
        if self.update_state(&update_id).is_some() {
            return Ok(());
        }
        let accepted = self
            .state
            .updates
            .values()
            .filter(|i| i.completed_event_id == 0)
            .count();
        // A limit of zero disables it, as in Temporal.
        let limits = &env.limits;
        let in_flight = (self.updates.pending() + accepted) as i64;
        if limits.max_in_flight_updates > 0 && in_flight >= limits.max_in_flight_updates {
            return Err(UpdateRefusal::TooManyInFlight(limits.max_in_flight_updates));
        }
        let total = (self.updates.pending() + self.state.updates.len()) as i64;
        if limits.max_total_updates > 0 && total >= limits.max_total_updates {
            return Err(UpdateRefusal::TooManyTotal(limits.max_total_updates));
        }
        self.updates.in_flight.push(InFlight {
            id: update_id,
            request,
            state: UpdateState::Admitted,
            failure: None,
        });
        if self.state.workflow_task.is_none() && self.state.last_completed_wft_started_event_id > 0
        {
            self.schedule_speculative_workflow_task(env);
        }
        Ok(())
    }

    /// Hands the admitted (and the sent but unanswered) updates to the task being started, as
    /// protocol messages sequenced before its WorkflowTaskStarted event.
    pub(crate) fn deliver_updates(&mut self, mut start: WorkflowTaskStart) -> WorkflowTaskStart {
        let sequencing_event_id = start.started_event_id - 1;
        for u in &mut self.updates.in_flight {
            let Some(next) = u.state.on(UpdateInput::Send) else {
                continue;
            };
            u.state = next;
            start.messages.push(Message {
                id: format!("{}/request", u.id),
                protocol_instance_id: u.id.clone(),
                body: Some(prost_wkt_types::Any {
                    type_url: format!("{TYPE_URL_PREFIX}{REQUEST_TYPE}"),
                    value: u.request.encode_to_vec(),
                }),
                sequencing_id: Some(SequencingId::EventId(sequencing_event_id)),
            });
        }
        start
    }
}
