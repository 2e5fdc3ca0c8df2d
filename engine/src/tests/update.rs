//! Workflow updates: the update state machine's transition table, speculative workflow tasks
//! (kept, discarded, converted, timed out), protocol messages in completions, admission
//! refusals, and what a closing run does to updates in flight (reference §2.3).

use prost::Message as _;
use temporalio_protos::temporal::api::{
    command::v1::{Command, ProtocolMessageCommandAttributes, command::Attributes as Cmd},
    enums::v1::{CommandType, TimeoutType, WorkflowTaskFailedCause},
    protocol::v1::{Message, message::SequencingId},
    update::v1::{Acceptance, Input, Meta, Outcome, Rejection, Request, Response, outcome},
    workflowservice::v1::{
        RespondWorkflowTaskCompletedRequest, respond_workflow_task_completed_request::Capabilities,
    },
};

use super::driver::*;
use crate::update::{
    AbortReason, InvalidTransition, UpdateInput, UpdateRefusal, UpdateState, UpdateStatus,
};
use crate::{Env, TaskInfo, TaskKind, Workflow};

// ---- requests and messages ----

fn request(update_id: &str) -> Request {
    Request {
        meta: Some(Meta {
            update_id: update_id.into(),
            identity: "client-1".into(),
        }),
        input: Some(Input {
            name: "add".into(),
            args: Some(payloads("5")),
            header: None,
        }),
        ..Default::default()
    }
}

fn message<M: prost::Message>(id: String, update_id: &str, type_name: &str, body: M) -> Message {
    Message {
        id,
        protocol_instance_id: update_id.into(),
        body: Some(prost_wkt_types::Any {
            type_url: format!("type.googleapis.com/temporal.api.update.v1.{type_name}"),
            value: body.encode_to_vec(),
        }),
        sequencing_id: None,
    }
}

fn acceptance(update_id: &str) -> Message {
    message(
        format!("{update_id}/accept"),
        update_id,
        "Acceptance",
        Acceptance {
            accepted_request_message_id: format!("{update_id}/request"),
            accepted_request_sequencing_event_id: 5,
            accepted_request: None,
        },
    )
}

fn acceptance_with_request(update_id: &str) -> Message {
    message(
        format!("{update_id}/accept"),
        update_id,
        "Acceptance",
        Acceptance {
            accepted_request_message_id: format!("{update_id}/request"),
            accepted_request_sequencing_event_id: 5,
            accepted_request: Some(request(update_id)),
        },
    )
}

fn response(update_id: &str) -> Message {
    message(
        format!("{update_id}/complete"),
        update_id,
        "Response",
        Response {
            meta: Some(Meta {
                update_id: update_id.into(),
                identity: WORKER.into(),
            }),
            outcome: Some(Outcome {
                value: Some(outcome::Value::Success(payloads("6"))),
            }),
        },
    )
}

fn rejection(update_id: &str) -> Message {
    message(
        format!("{update_id}/reject"),
        update_id,
        "Rejection",
        Rejection {
            rejected_request_message_id: format!("{update_id}/request"),
            rejected_request_sequencing_event_id: 5,
            rejected_request: Some(request(update_id)),
            failure: Some(app_failure("negative", "ValueError", false)),
        },
    )
}

fn protocol(message_id: &str) -> Command {
    Command {
        command_type: CommandType::ProtocolMessage as i32,
        attributes: Some(Cmd::ProtocolMessageCommandAttributes(
            ProtocolMessageCommandAttributes {
                message_id: message_id.into(),
            },
        )),
        ..Default::default()
    }
}

/// What the Python SDK sends for an update accepted and completed in one task.
fn accept_and_complete(update_id: &str) -> RespondWorkflowTaskCompletedRequest {
    let (accept, done) = (acceptance(update_id), response(update_id));
    RespondWorkflowTaskCompletedRequest {
        commands: vec![protocol(&accept.id), protocol(&done.id)],
        messages: vec![accept, done],
        ..worker_completion(vec![])
    }
}

/// A completion as sdk-core sends it: it takes the next task at once and tolerates seeing a
/// discarded task's events again.
fn worker_completion(commands: Vec<Command>) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        return_new_workflow_task: true,
        capabilities: Some(Capabilities {
            discard_speculative_workflow_task_with_events: true,
        }),
        ..completion(commands)
    }
}

fn with_messages(
    commands: Vec<Command>,
    messages: Vec<Message>,
) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        messages,
        ..worker_completion(commands)
    }
}

// ---- driver steps ----

fn admit(d: &mut Driver, update_id: &str) -> Result<(), UpdateRefusal> {
    let env = d.env();
    let out = d.wf.admit_update(request(update_id), "", &env);
    d.collect();
    out
}

/// A run whose first task completed without commands: idle, events 1–4.
fn idle_run() -> Driver {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![]);
    assert_eq!(d.wf.state.workflow_task, None);
    d
}

fn speculative_tasks(d: &Driver) -> Vec<TaskInfo> {
    d.last_tasks
        .iter()
        .filter(|t| t.speculative)
        .cloned()
        .collect()
}

fn status(d: &Driver, update_id: &str) -> Option<UpdateStatus> {
    d.wf.update_status(update_id)
}

// ---- the state machine ----

#[test]
fn transition_table_allows_only_the_documented_moves() {
    use UpdateInput as I;
    use UpdateState as S;
    let states = [
        S::Admitted,
        S::Sent,
        S::Accepted,
        S::Completed,
        S::Rejected,
        S::Aborted,
    ];
    let inputs = [I::Send, I::Accept, I::Reject, I::Respond, I::Abort];
    let expected = |s: S, i: I| match (s, i) {
        (S::Admitted | S::Sent, I::Send) => Some(S::Sent),
        (S::Admitted | S::Sent, I::Accept) => Some(S::Accepted),
        (S::Admitted | S::Sent, I::Reject) => Some(S::Rejected),
        (S::Admitted | S::Sent | S::Accepted, I::Abort) => Some(S::Aborted),
        (S::Accepted, I::Respond) => Some(S::Completed),
        _ => None,
    };
    let mut allowed = 0;
    for s in states {
        for i in inputs {
            assert_eq!(s.on(i), expected(s, i), "{s:?} on {i:?}");
            allowed += usize::from(s.on(i).is_some());
        }
    }
    assert_eq!(allowed, 10);
    // Terminal states take nothing; a response needs an accepted update.
    let err = S::Admitted.next("u1", I::Respond).unwrap_err();
    assert_eq!(
        err,
        InvalidTransition {
            update_id: "u1".into(),
            input: I::Respond,
            state: S::Admitted,
        }
    );
    assert!(
        err.to_string()
            .contains("invalid state transition attempted for Update u1")
    );
    assert!(S::Completed.next("u1", I::Accept).is_err());
    assert!(S::Rejected.next("u1", I::Accept).is_err());
}

// ---- speculative workflow tasks ----

#[test]
fn update_on_idle_run_rides_a_speculative_task_that_is_kept() {
    let mut d = idle_run();
    let stored_before = d.wf.state.clone();
    admit(&mut d, "u1").unwrap();
    assert!(d.last_events.is_empty(), "admission writes nothing");
    let task =
        d.wf.state
            .workflow_task
            .clone()
            .expect("a task carries the update");
    assert!(task.speculative);
    assert_eq!((task.scheduled_event_id, task.attempt), (5, 1));
    assert_eq!(
        d.wf.state.clone().without_speculative_task(),
        stored_before,
        "the store sees nothing"
    );
    assert!(d.wf.state.stores_same_as(&stored_before));
    let memory_only = speculative_tasks(&d);
    assert_eq!(
        memory_only.len(),
        d.last_tasks.len(),
        "no stored task either"
    );
    assert_eq!(
        memory_only
            .iter()
            .map(TaskInfo::task_kind)
            .collect::<Vec<_>>(),
        vec![
            TaskKind::DispatchWorkflowTask,
            TaskKind::WorkflowTaskTimeout
        ]
    );
    assert_eq!(
        memory_only[1].timeout_type,
        TimeoutType::ScheduleToStart as i32
    );
    assert_eq!(memory_only[1].fire_time_ms, d.now_ms + 5_000);
    assert_eq!(status(&d, "u1"), Some(UpdateStatus::Admitted));

    let start = d.poll_wft();
    assert!(
        d.last_events.is_empty(),
        "its events travel only in the poll response"
    );
    assert_eq!((start.scheduled_event_id, start.started_event_id), (5, 6));
    assert_eq!(start.previous_started_event_id, 3);
    assert_eq!(
        types_of(&start.transient_events),
        vec![E::WorkflowTaskScheduled, E::WorkflowTaskStarted]
    );
    assert_eq!(start.messages.len(), 1);
    let delivered = &start.messages[0];
    assert_eq!(delivered.id, "u1/request");
    assert_eq!(delivered.protocol_instance_id, "u1");
    assert_eq!(delivered.sequencing_id, Some(SequencingId::EventId(5)));
    let body = delivered.body.as_ref().unwrap();
    assert_eq!(
        body.type_url,
        "type.googleapis.com/temporal.api.update.v1.Request"
    );
    assert_eq!(
        Request::decode(body.value.as_slice()).unwrap(),
        request("u1")
    );
    assert_eq!(d.wf.update_state("u1"), Some(UpdateState::Sent));
    assert!(
        d.last_tasks.iter().all(|t| t.speculative),
        "its timeout too"
    );

    let outcome = d.complete_wft_with(accept_and_complete("u1"));
    assert_eq!(outcome.reset_history_event_id, 0, "kept: no rollback");
    assert_eq!(
        d.types_from(5),
        vec![
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionUpdateAccepted,
            E::WorkflowExecutionUpdateCompleted,
        ]
    );
    let accepted = attrs!(d.event(8), WorkflowExecutionUpdateAcceptedEventAttributes);
    assert_eq!(accepted.protocol_instance_id, "u1");
    assert_eq!(accepted.accepted_request_message_id, "u1/request");
    assert_eq!(accepted.accepted_request_sequencing_event_id, 5);
    assert_eq!(accepted.accepted_request, Some(request("u1")));
    let completed = attrs!(d.event(9), WorkflowExecutionUpdateCompletedEventAttributes);
    assert_eq!(completed.accepted_event_id, 8);
    assert_eq!(completed.meta.as_ref().unwrap().update_id, "u1");
    let started = attrs!(d.event(6), WorkflowTaskStartedEventAttributes);
    assert_eq!(started.scheduled_event_id, 5);
    assert_eq!(d.wf.state.updates["u1"].accepted_event_id, 8);
    assert_eq!(status(&d, "u1"), Some(UpdateStatus::CompletedAt(9)));
    assert_eq!(d.wf.state.workflow_task, None);
    assert_eq!(d.wf.state.last_completed_wft_started_event_id, 6);
    assert!(!d.wf.has_updates_in_memory());
}

#[test]
fn rejected_update_discards_the_speculative_task() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let before = d.wf.state.clone().without_speculative_task();
    let outcome = d.complete_wft_with(with_messages(vec![], vec![rejection("u1")]));
    assert!(
        d.last_events.is_empty() && d.last_tasks.is_empty(),
        "no trace"
    );
    assert_eq!(
        outcome.reset_history_event_id, 3,
        "the worker rolls back to event 3"
    );
    assert!(outcome.new_workflow_task.is_none());
    assert_eq!(d.wf.state, before);
    let rejected = status(&d, "u1").expect("reported until forgotten");
    assert_eq!(
        rejected.failure().map(|f| f.message.as_str()),
        Some("negative")
    );
    // Once its callers were told, the rejection is forgotten.
    d.wf.forget_finished_updates();
    assert_eq!(status(&d, "u1"), None);
    // The same id may come again and is a new update.
    admit(&mut d, "u1").unwrap();
    assert_eq!(status(&d, "u1"), Some(UpdateStatus::Admitted));
}

/// A dropped speculative task is made again with the same scheduled id, started event id and
/// attempt: only the start time tells a stale token's completion (or failure) from the new
/// task's, and it is refused as Temporal refuses it.
#[test]
fn a_stale_token_cannot_answer_a_remade_speculative_task() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    let first = d.poll_wft();
    d.complete_wft_with(with_messages(vec![], vec![rejection("u1")]));
    d.advance(1_000);
    admit(&mut d, "u2").unwrap();
    let second = d.poll_wft();
    assert_eq!(
        (
            first.scheduled_event_id,
            first.started_event_id,
            first.attempt
        ),
        (
            second.scheduled_event_id,
            second.started_event_id,
            second.attempt
        )
    );
    let err =
        d.wf.check_workflow_task_start(first.started_event_id, first.started_time_ms)
            .unwrap_err();
    assert_eq!(
        err,
        crate::Error::NotFound("Workflow task not found.".into())
    );
    d.wf.check_workflow_task_start(second.started_event_id, second.started_time_ms)
        .unwrap();
    // A token without the start (zero) is not refused on that ground.
    d.wf.check_workflow_task_start(0, 0).unwrap();
}

/// Work that writes no event (an activity starting, a heartbeat) leaves a speculative task
/// speculative, as in Temporal; the stored state never has it.
#[test]
fn activity_start_and_heartbeat_leave_a_speculative_task_alone() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![schedule_activity("a"), schedule_activity("b")]);
    d.start_activity(5);
    admit(&mut d, "u1").unwrap();
    assert!(d.wf.state.has_speculative_task());
    d.start_activity(6);
    d.heartbeat(5, "still going");
    assert!(d.last_events.is_empty());
    assert!(d.wf.state.has_speculative_task());
    assert!(
        d.last_tasks.iter().all(|t| t.speculative),
        "nothing durable for the speculative task"
    );
    let stored = d.wf.state.clone().without_speculative_task();
    assert_eq!(stored.workflow_task, None);
    assert!(stored.activities[&5].heartbeat_details.is_some());
    // The worker takes it and rejects the update: nothing of it is written.
    d.poll_wft();
    d.complete_wft_with(with_messages(vec![], vec![rejection("u1")]));
    assert!(d.last_events.is_empty());
    assert_eq!(d.wf.state.workflow_task, None);
}

#[test]
fn rejection_with_commands_keeps_the_speculative_task() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let outcome = d.complete_wft_with(with_messages(
        vec![start_timer("t", 1_000)],
        vec![rejection("u1")],
    ));
    assert_eq!(outcome.reset_history_event_id, 0);
    assert_eq!(
        d.types_from(5),
        vec![
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::TimerStarted,
        ]
    );
    assert!(matches!(status(&d, "u1"), Some(UpdateStatus::Outcome(_))));
}

#[test]
fn an_update_the_worker_ignores_is_rejected_by_the_server() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let outcome = d.complete_wft_with(worker_completion(vec![]));
    assert_eq!(outcome.reset_history_event_id, 3);
    assert!(d.last_events.is_empty());
    let rejected = status(&d, "u1").expect("reported until forgotten");
    assert!(
        rejected
            .failure()
            .unwrap()
            .message
            .contains("wasn't processed by worker")
    );
}

#[test]
fn a_speculative_task_with_too_many_shipped_events_is_kept() {
    let mut d = idle_run();
    // A worker that cannot take events twice: a task that shipped events must be kept.
    d.signal("s");
    d.poll_wft();
    d.complete_wft(vec![start_timer("t", 60_000)]);
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let request = RespondWorkflowTaskCompletedRequest {
        messages: vec![rejection("u1")],
        ..completion(vec![])
    };
    let outcome = d.complete_wft_with(request);
    assert_eq!(outcome.reset_history_event_id, 0);
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted
        ]
    );
}

#[test]
fn an_event_converts_a_scheduled_speculative_task_first() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.signal("s");
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskScheduled, E::WorkflowExecutionSignaled]
    );
    let task = d.wf.state.workflow_task.clone().unwrap();
    assert!(!task.speculative);
    assert_eq!(task.scheduled_event_id, 5);
    let dispatch = d.task(TaskKind::DispatchWorkflowTask);
    assert!(
        !dispatch.speculative,
        "a stored dispatch replaces the memory-only one"
    );
    let start = d.poll_wft();
    assert_eq!(start.started_event_id, 7);
    assert!(start.transient_events.is_empty());
    assert_eq!(start.messages.len(), 1, "the update still rides this task");
    d.complete_wft_with(accept_and_complete("u1"));
    assert_eq!(
        d.types_from(7),
        vec![
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionUpdateAccepted,
            E::WorkflowExecutionUpdateCompleted,
        ]
    );
}

#[test]
fn an_event_during_a_running_speculative_task_writes_its_events_then_waits() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    d.signal("s");
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskScheduled, E::WorkflowTaskStarted]
    );
    assert_eq!(d.buffered_types(), vec![E::WorkflowExecutionSignaled]);
    let timeout = d
        .last_tasks
        .iter()
        .find(|t| t.task_kind() == TaskKind::WorkflowTaskTimeout);
    assert!(
        timeout.is_some_and(|t| !t.speculative),
        "a stored start-to-close timeout"
    );
    d.complete_wft_with(accept_and_complete("u1"));
    assert_eq!(
        d.types_from(7),
        vec![
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionUpdateAccepted,
            E::WorkflowExecutionUpdateCompleted,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
        ]
    );
}

#[test]
fn a_speculative_task_that_times_out_is_written_and_retried() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let timeout = d.task_where(TaskKind::WorkflowTaskTimeout, |t| {
        t.timeout_type == TimeoutType::StartToClose as i32
    });
    assert!(timeout.speculative);
    d.fire(&timeout);
    assert_eq!(
        d.types_from(5),
        vec![
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskTimedOut
        ]
    );
    let retry = d.wf.state.workflow_task.clone().unwrap();
    assert!(retry.transient && !retry.speculative);
    assert_eq!(retry.attempt, 2);
    let start = d.poll_wft();
    assert_eq!(
        start.messages.len(),
        1,
        "the unanswered update is sent again"
    );
    d.complete_wft_with(accept_and_complete("u1"));
    assert_eq!(status(&d, "u1"), Some(UpdateStatus::CompletedAt(12)));
}

#[test]
fn a_speculative_task_nobody_starts_becomes_a_normal_one() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    let timeout = d.task_where(TaskKind::WorkflowTaskTimeout, |t| t.speculative);
    d.fire(&timeout);
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskScheduled,
            E::WorkflowTaskTimedOut,
            E::WorkflowTaskScheduled
        ]
    );
    let timed_out = attrs!(d.event(6), WorkflowTaskTimedOutEventAttributes);
    assert_eq!(timed_out.timeout_type, TimeoutType::ScheduleToStart as i32);
    let task = d.wf.state.workflow_task.clone().unwrap();
    assert!(!task.speculative && !task.transient);
    assert_eq!((task.scheduled_event_id, task.attempt), (7, 1));
    assert_eq!(d.poll_wft().messages.len(), 1);
}

#[test]
fn a_stale_speculative_timeout_leaves_a_later_task_alone() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let stale = d.task_where(TaskKind::WorkflowTaskTimeout, |t| {
        t.speculative && t.timeout_type == TimeoutType::StartToClose as i32
    });
    d.complete_wft_with(with_messages(vec![], vec![rejection("u1")]));
    d.advance(1_000);
    admit(&mut d, "u2").unwrap();
    d.poll_wft();
    let task = d.wf.state.workflow_task.clone().unwrap();
    assert_eq!(
        (task.scheduled_event_id, task.attempt),
        (stale.scheduled_event_id, stale.attempt)
    );
    let before = d.wf.state.clone();
    d.fire(&stale);
    assert_eq!(
        d.wf.state, before,
        "the timeout of the discarded task does nothing"
    );
    assert!(d.last_events.is_empty());
}

#[test]
fn a_failed_speculative_task_is_written_and_its_update_sent_again() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    d.fail_wft();
    assert_eq!(
        d.types_from(5),
        vec![
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed
        ]
    );
    assert_eq!(d.poll_wft().messages.len(), 1);
}

#[test]
fn an_update_during_a_running_task_gets_a_speculative_task_after_it() {
    let mut d = Driver::start();
    d.poll_wft();
    admit(&mut d, "u1").unwrap();
    assert!(
        d.last_tasks.is_empty(),
        "the running task's completion takes care of it"
    );
    let outcome = d.complete_wft_with(worker_completion(vec![]));
    assert_eq!(d.last_types(), vec![E::WorkflowTaskCompleted]);
    let next = outcome
        .new_workflow_task
        .expect("the worker gets the next task at once");
    assert!(d.wf.state.workflow_task.as_ref().unwrap().speculative);
    assert_eq!(next.messages.len(), 1);
    assert_eq!(
        types_of(&next.transient_events),
        vec![E::WorkflowTaskScheduled, E::WorkflowTaskStarted]
    );
    assert!(
        !d.last_tasks
            .iter()
            .any(|t| t.task_kind() == TaskKind::DispatchWorkflowTask),
        "started at once: nothing dispatched"
    );
}

#[test]
fn an_update_during_a_running_task_gets_a_normal_task_for_a_plain_worker() {
    let mut d = Driver::start();
    d.poll_wft();
    admit(&mut d, "u1").unwrap();
    d.complete_wft(vec![]);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskCompleted, E::WorkflowTaskScheduled]
    );
    assert_eq!(d.poll_wft().messages.len(), 1);
}

#[test]
fn an_update_on_a_new_run_rides_its_first_task() {
    let mut d = Driver::start();
    admit(&mut d, "u1").unwrap();
    assert!(d.last_tasks.is_empty());
    let start = d.poll_wft();
    assert!(start.transient_events.is_empty());
    assert_eq!(start.messages.len(), 1);
    assert_eq!(
        start.messages[0].sequencing_id,
        Some(SequencingId::EventId(2))
    );
    d.complete_wft_with(accept_and_complete("u1"));
    assert_eq!(
        d.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionUpdateAccepted,
            E::WorkflowExecutionUpdateCompleted,
        ]
    );
}

#[test]
fn a_speculative_task_is_never_stored() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let reloaded = d.reload();
    assert_eq!(
        reloaded
            .wf
            .state
            .workflow_task
            .as_ref()
            .map(|t| t.speculative),
        Some(true)
    );
    let stored = d.wf.state.clone().without_speculative_task();
    assert_eq!(stored.workflow_task, None);
    // A run loaded from the store knows neither the task nor the update: a retried request
    // admits it again.
    let mut fresh = crate::Workflow::from_state(stored);
    assert_eq!(fresh.update_state("u1"), None);
    fresh.admit_update(request("u1"), "", &d.env()).unwrap();
    assert!(fresh.state.workflow_task.as_ref().unwrap().speculative);
}

// ---- messages that fail the task ----

fn assert_bad_update_message(d: &Driver) {
    assert_eq!(d.last_types().first(), Some(&E::WorkflowTaskScheduled));
    let failed = d
        .history
        .iter()
        .rev()
        .find(|e| e.event_type == E::WorkflowTaskFailed as i32)
        .expect("the task failed");
    let failed = attrs!(failed, WorkflowTaskFailedEventAttributes);
    assert_eq!(
        failed.cause,
        WorkflowTaskFailedCause::BadUpdateWorkflowExecutionMessage as i32
    );
}

#[test]
fn a_response_for_an_update_not_accepted_fails_the_task() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let done = response("u1");
    let outcome = d.complete_wft_with(with_messages(vec![protocol(&done.id)], vec![done]));
    let rejected = outcome.rejected.expect("the completion is refused");
    assert!(
        rejected.message.contains("invalid state transition"),
        "{}",
        rejected.message
    );
    assert_bad_update_message(&d);
    assert_eq!(
        d.types_from(5),
        vec![
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
        ]
    );
    assert_eq!(
        d.wf.update_state("u1"),
        Some(UpdateState::Sent),
        "sent again next time"
    );
}

#[test]
fn a_protocol_command_naming_no_message_fails_the_task() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let outcome = d.complete_wft_with(worker_completion(vec![protocol("nope")]));
    assert!(
        outcome
            .rejected
            .unwrap()
            .message
            .contains("absent message ID nope")
    );
    assert_bad_update_message(&d);
}

#[test]
fn an_answer_for_an_unknown_update_fails_the_task_unless_it_carries_the_request() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let accept = acceptance("ghost");
    let outcome = d.complete_wft_with(with_messages(vec![protocol(&accept.id)], vec![accept]));
    assert!(
        outcome
            .rejected
            .unwrap()
            .message
            .contains("wasn't found on the server")
    );

    // The retry carries the request: the update is re-admitted from it and accepted.
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    let accept = acceptance_with_request("ghost");
    let mut request = accept_and_complete("u1");
    request.commands.push(protocol(&accept.id));
    request.messages.push(accept);
    d.complete_wft_with(request);
    assert_eq!(d.wf.update_state("ghost"), Some(UpdateState::Accepted));
    assert_eq!(status(&d, "ghost"), Some(UpdateStatus::Accepted));
}

// ---- admission ----

#[test]
fn admission_refusals() {
    let mut d = idle_run();
    // A repeated id is the same update: no second task, no second entry.
    admit(&mut d, "u1").unwrap();
    admit(&mut d, "u1").unwrap();
    assert!(d.last_tasks.is_empty());
    // Another chain of runs.
    let env = d.env();
    assert_eq!(
        d.wf.admit_update(request("u2"), "some-other-run", &env),
        Err(UpdateRefusal::WrongFirstRun)
    );
    // Ten in flight at most.
    for i in 2..=10 {
        admit(&mut d, &format!("u{i}")).unwrap();
    }
    assert_eq!(
        admit(&mut d, "u11"),
        Err(UpdateRefusal::TooManyInFlight(10))
    );
    // The limits are dynamic config (0 disables one).
    d.limits.max_in_flight_updates = 0;
    admit(&mut d, "u11").unwrap();
    d.limits.max_total_updates = 11;
    assert_eq!(admit(&mut d, "u12"), Err(UpdateRefusal::TooManyTotal(11)));
    d.limits.max_total_updates = 12;
    admit(&mut d, "u12").unwrap();

    // A workflow task that keeps failing refuses updates.
    let mut d = idle_run();
    d.signal("s");
    d.poll_wft();
    d.fail_wft();
    d.poll_wft();
    d.fail_wft();
    assert_eq!(d.wf.state.workflow_task_attempt, 3);
    assert_eq!(admit(&mut d, "u1"), Err(UpdateRefusal::WorkflowTaskFailing));

    // A closed run takes no new update, but still answers for the ones it knew.
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    d.complete_wft_with(accept_and_complete("u1"));
    d.terminate().unwrap();
    assert_eq!(admit(&mut d, "u2"), Err(UpdateRefusal::WorkflowCompleted));
    assert_eq!(admit(&mut d, "u1"), Ok(()));
    assert_eq!(status(&d, "u1"), Some(UpdateStatus::CompletedAt(9)));
}

// ---- closing runs ----

#[test]
fn a_closing_run_aborts_admitted_updates_and_fails_accepted_ones() {
    let mut d = idle_run();
    admit(&mut d, "accepted").unwrap();
    d.poll_wft();
    // Accepted, not completed (its handler still runs).
    let accept = acceptance("accepted");
    d.complete_wft_with(with_messages(vec![protocol(&accept.id)], vec![accept]));
    assert_eq!(status(&d, "accepted"), Some(UpdateStatus::Accepted));
    d.signal("s");
    admit(&mut d, "admitted").unwrap();
    d.terminate().unwrap();
    assert_eq!(
        status(&d, "admitted"),
        Some(UpdateStatus::Aborted(AbortReason::WorkflowCompleted))
    );
    let failed = status(&d, "accepted").expect("an outcome");
    let failure = failed.failure().expect("a failure outcome");
    assert!(
        failure
            .message
            .contains("Workflow completed before the Update completed")
    );
    d.wf.forget_finished_updates();
    assert_eq!(status(&d, "admitted"), None);
}

#[test]
fn a_run_continuing_as_new_sends_admitted_updates_to_the_next_run() {
    let mut d = Driver::start();
    d.poll_wft();
    admit(&mut d, "u1").unwrap();
    d.complete_wft_with(worker_completion(vec![continue_as_new()]));
    assert_eq!(
        status(&d, "u1"),
        Some(UpdateStatus::Aborted(AbortReason::WorkflowContinuing))
    );
}

#[test]
fn terminating_a_run_drops_its_unstarted_speculative_task() {
    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.terminate().unwrap();
    assert_eq!(d.last_types(), vec![E::WorkflowExecutionTerminated]);

    let mut d = idle_run();
    admit(&mut d, "u1").unwrap();
    d.poll_wft();
    d.terminate().unwrap();
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::WorkflowExecutionTerminated,
        ]
    );
}

// ---- updates re-applied by a reset ----

/// A reset re-applies an update accepted after its point as WorkflowExecutionUpdateAdmitted
/// (origin REAPPLY); the worker reads it from history and answers it (its acceptance carries no
/// request), and the update is accepted and completed again in the new run. An update the
/// worker rejects this time leaves nothing.
#[test]
fn a_reset_readmits_updates_in_history() {
    use temporalio_protos::temporal::api::enums::v1::UpdateAdmittedEventOrigin;

    let mut base = idle_run();
    for id in ["u1", "u2"] {
        admit(&mut base, id).unwrap();
        base.poll_wft();
        base.complete_wft_with(accept_and_complete(id));
    }
    let params = crate::ResetParams {
        workflow_task_finish_event_id: 4,
        reason: "again".into(),
        request_id: "reset-1".into(),
    };
    let env = Env::new(base.now_ms, "run-reset");
    let mut wf = Workflow::reset_from(&base.wf.state, &base.history, &params, &env).unwrap();
    let later: Vec<_> = base.history[4..].to_vec();
    wf.reapply_after_reset(&later, crate::Reapply::default(), &env);
    // Offered twice (a later run's copy): admitted once.
    wf.reapply_after_reset(&later, crate::Reapply::default(), &env);
    wf.finish_reset(&env);
    let mut d = Driver::from_workflow(wf, base.now_ms);
    assert_eq!(
        d.types_from(4),
        vec![
            E::WorkflowTaskFailed,
            E::WorkflowExecutionUpdateAdmitted,
            E::WorkflowExecutionUpdateAdmitted,
            E::WorkflowTaskScheduled,
        ]
    );
    let admitted = attrs!(d.event(5), WorkflowExecutionUpdateAdmittedEventAttributes);
    assert_eq!(admitted.origin, UpdateAdmittedEventOrigin::Reapply as i32);
    assert_eq!(admitted.request, Some(request("u1")));
    assert_eq!(status(&d, "u1"), Some(UpdateStatus::Admitted));
    // The task carries no update messages: they are in history.
    let start = d.poll_wft();
    assert!(start.messages.is_empty());
    // (sdk-core sends the request in the acceptance anyway.)
    let (accept, done) = (acceptance_with_request("u1"), response("u1"));
    d.complete_wft_with(with_messages(
        vec![protocol(&accept.id), protocol(&done.id)],
        vec![accept, done, rejection("u2")],
    ));
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionUpdateAccepted,
            E::WorkflowExecutionUpdateCompleted,
        ]
    );
    let accepted = attrs!(d.event(10), WorkflowExecutionUpdateAcceptedEventAttributes);
    assert_eq!(
        accepted.accepted_request, None,
        "the request is in the admitted event"
    );
    assert!(matches!(
        status(&d, "u1"),
        Some(UpdateStatus::CompletedAt(11))
    ));
    assert_eq!(status(&d, "u2"), None, "rejected: gone");

    // With updates excluded, nothing is admitted.
    let mut wf = Workflow::reset_from(&base.wf.state, &base.history, &params, &env).unwrap();
    let only_signals = crate::Reapply {
        signals: true,
        updates: false,
    };
    wf.reapply_after_reset(&later, only_signals, &env);
    let d = Driver::from_workflow(wf, base.now_ms);
    assert_eq!(d.types_from(4), vec![E::WorkflowTaskFailed]);
}
