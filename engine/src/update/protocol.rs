//! Protocol messages in workflow-task completions: the worker's Acceptance, Rejection and
//! Response messages, applied where PROTOCOL_MESSAGE commands place them (or after all
//! commands), and the server's rejection of updates the worker left unanswered
//! (Temporal's `message-protocol.md`).

use temporalio_protos::temporal::api::{
    enums::v1::WorkflowTaskFailedCause,
    history::v1::{
        WorkflowExecutionUpdateAcceptedEventAttributes,
        WorkflowExecutionUpdateCompletedEventAttributes, history_event::Attributes,
    },
    protocol::v1::Message,
    update::v1::{Acceptance, Rejection, Request, Response},
};

use super::{
    ACCEPTANCE_TYPE, InFlight, InvalidTransition, REJECTION_TYPE, RESPONSE_TYPE, UpdateInput,
    UpdateState, unprocessed_update_failure,
};
use crate::commands::CommandError;
use crate::workflow::{Env, Workflow};

fn bad_message(message: String) -> CommandError {
    CommandError::new(
        WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage,
        &message,
    )
}

impl From<InvalidTransition> for CommandError {
    fn from(err: InvalidTransition) -> Self {
        bad_message(err.to_string())
    }
}

/// The message type of a protocol message body (the part of the type URL after the last `/`).
fn body_type(message: &Message) -> &str {
    message
        .body
        .as_ref()
        .map_or("", |b| b.type_url.rsplit('/').next().unwrap_or(""))
}

/// True for a message carrying an update Rejection.
pub(crate) fn is_rejection(message: &Message) -> bool {
    body_type(message) == REJECTION_TYPE
}

fn decode_body<M: prost::Message + Default>(message: &Message) -> Result<M, CommandError> {
    let body = message.body.as_ref().ok_or_else(|| {
        bad_message(format!(
            "Update {} received message with nil body",
            message.protocol_instance_id
        ))
    })?;
    M::decode(body.value.as_slice())
        .map_err(|e| bad_message(format!("unable to unmarshal request: {e}")))
}

impl Workflow {
    /// A PROTOCOL_MESSAGE command: the message it names is applied here, between the events
    /// of the commands around it.
    pub(crate) fn apply_protocol_message_command(
        &mut self,
        message_id: &str,
        env: &Env,
    ) -> Result<(), CommandError> {
        let Some(pos) = self.updates.inbox.iter().position(|m| m.id == message_id) else {
            return Err(bad_message(format!(
                "ProtocolMessageCommand referenced absent message ID {message_id}."
            )));
        };
        let message = self.updates.inbox.remove(pos);
        self.apply_update_message(message, env)
    }

    /// After a completion's commands: the messages no command named are applied in their
    /// order, then updates the worker left unanswered are rejected on its behalf (unless the
    /// task was a heartbeat). A closed run takes no more messages: its updates are aborted.
    pub(crate) fn finish_update_messages(
        &mut self,
        heartbeat: bool,
        env: &Env,
    ) -> Result<(), CommandError> {
        let remaining = std::mem::take(&mut self.updates.inbox);
        if !self.is_open() {
            return Ok(());
        }
        for message in remaining {
            self.apply_update_message(message, env)?;
        }
        if !heartbeat {
            self.reject_unprocessed_updates();
        }
        Ok(())
    }

    /// Rejects, with [`unprocessed_update_failure`], every update sent but not answered.
    pub(crate) fn reject_unprocessed_updates(&mut self) {
        for u in &mut self.updates.in_flight {
            if u.state == UpdateState::Sent {
                u.state = UpdateState::Rejected;
                u.failure = Some(unprocessed_update_failure());
            }
        }
    }

    fn apply_update_message(&mut self, message: Message, env: &Env) -> Result<(), CommandError> {
        let update_id = message.protocol_instance_id.clone();
        match body_type(&message) {
            ACCEPTANCE_TYPE => {
                let acceptance: Acceptance = decode_body(&message)?;
                self.accept_update(&update_id, acceptance, env)
            }
            REJECTION_TYPE => {
                let rejection: Rejection = decode_body(&message)?;
                self.reject_update(&update_id, rejection)
            }
            RESPONSE_TYPE => {
                let response: Response = decode_body(&message)?;
                self.respond_update(&update_id, response, env)
            }
            other => Err(bad_message(format!(
                "Message type {other} not supported (update {update_id})."
            ))),
        }
    }

    /// The state of an update a worker answers; an update the server lost (a reloaded run) is
    /// re-admitted from the request the answer carries.
    fn answered_update_state(
        &mut self,
        update_id: &str,
        request: Option<Request>,
    ) -> Result<UpdateState, CommandError> {
        if let Some(state) = self.update_state(update_id) {
            return Ok(state);
        }
        let Some(request) = request else {
            return Err(bad_message(format!(
                "update {update_id} wasn't found on the server. This is most likely a transient error which will be resolved automatically by retries"
            )));
        };
        self.updates.in_flight.push(InFlight {
            id: update_id.to_string(),
            request,
            state: UpdateState::Admitted,
            failure: None,
        });
        Ok(UpdateState::Admitted)
    }

    fn accept_update(
        &mut self,
        update_id: &str,
        acceptance: Acceptance,
        env: &Env,
    ) -> Result<(), CommandError> {
        let state = self.answered_update_state(update_id, acceptance.accepted_request.clone())?;
        state.next(update_id, UpdateInput::Accept)?;
        // An update admitted in history has its request there: the accepted event omits it.
        let admitted_in_history = self
            .state
            .updates
            .get(update_id)
            .is_some_and(|i| i.admitted_event_id != 0);
        let request = self
            .updates
            .remove(update_id)
            .map(|u| u.request)
            .or(acceptance.accepted_request)
            .filter(|_| !admitted_in_history);
        self.append(
            env.now_ms,
            Attributes::WorkflowExecutionUpdateAcceptedEventAttributes(
                WorkflowExecutionUpdateAcceptedEventAttributes {
                    protocol_instance_id: update_id.to_string(),
                    accepted_request_message_id: format!("{update_id}/request"),
                    accepted_request_sequencing_event_id: acceptance
                        .accepted_request_sequencing_event_id,
                    accepted_request: request,
                },
            ),
        );
        Ok(())
    }

    fn reject_update(&mut self, update_id: &str, rejection: Rejection) -> Result<(), CommandError> {
        let state = self.answered_update_state(update_id, rejection.rejected_request)?;
        let next = state.next(update_id, UpdateInput::Reject)?;
        if let Some(u) = self.updates.get_mut(update_id) {
            u.state = next;
            u.failure = rejection.failure;
        } else if self
            .state
            .updates
            .get(update_id)
            .is_some_and(|i| i.accepted_event_id == 0)
        {
            // Admitted in history and rejected by the worker: nothing more is written.
            self.state.updates.remove(update_id);
        }
        Ok(())
    }

    fn respond_update(
        &mut self,
        update_id: &str,
        response: Response,
        env: &Env,
    ) -> Result<(), CommandError> {
        let state = self.answered_update_state(update_id, None)?;
        state.next(update_id, UpdateInput::Respond)?;
        let meta_id = response.meta.as_ref().map_or("", |m| m.update_id.as_str());
        if meta_id != update_id {
            return Err(bad_message(format!(
                "invalid Response: meta.update_id {meta_id:?} != {update_id}"
            )));
        }
        if response.outcome.is_none() {
            return Err(bad_message(
                "invalid Response: outcome is not set".to_string(),
            ));
        }
        let accepted_event_id = self
            .state
            .updates
            .get(update_id)
            .map_or(0, |i| i.accepted_event_id);
        self.append(
            env.now_ms,
            Attributes::WorkflowExecutionUpdateCompletedEventAttributes(
                WorkflowExecutionUpdateCompletedEventAttributes {
                    meta: response.meta,
                    accepted_event_id,
                    outcome: response.outcome,
                },
            ),
        );
        Ok(())
    }

    /// Checks that a speculative task's messages are all rejections the registry can take,
    /// without changing anything.
    pub(crate) fn rejections_apply(&self, messages: &[Message]) -> bool {
        messages.iter().all(|m| {
            if !is_rejection(m) {
                return false;
            }
            let Ok(rejection) = decode_body::<Rejection>(m) else {
                return false;
            };
            match self.update_state(&m.protocol_instance_id) {
                Some(state) => state.on(UpdateInput::Reject).is_some(),
                None => rejection.rejected_request.is_some(),
            }
        })
    }

    /// Applies rejection messages checked by [`Workflow::rejections_apply`].
    pub(crate) fn apply_rejections(&mut self, messages: &[Message]) {
        for m in messages {
            if let Ok(rejection) = decode_body::<Rejection>(m) {
                let _ = self.reject_update(&m.protocol_instance_id, rejection);
            }
        }
    }
}
