//! Stale tokens and invalid transitions: each is an error (NotFound, TaskAlreadyStarted,
//! WorkflowCompleted, ...) that leaves the run untouched, never a panic (rule 10; STYLE.md 2).

use temporalio_protos::temporal::api::{
    command::v1::Command, enums::v1::WorkflowTaskFailedCause, failure::v1::Failure,
};

use super::driver::*;
use crate::{Error, TaskKind};

fn not_found<T: std::fmt::Debug>(result: crate::Result<T>) {
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
}

/// Completing a workflow task with a token naming another attempt or scheduled id, or a task
/// that is not started, is NotFound.
#[test]
fn stale_workflow_task_tokens() {
    let mut d = Driver::start();
    not_found(d.unchanged(|d| d.try_complete_wft(2, 1, completion(vec![]))));
    d.poll_wft();
    not_found(d.unchanged(|d| d.try_complete_wft(2, 2, completion(vec![]))));
    not_found(d.unchanged(|d| d.try_complete_wft(3, 1, completion(vec![]))));
    let env = d.env();
    not_found(d.unchanged(|d| {
        let out = d.wf.fail_workflow_task(
            2,
            2,
            WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure,
            None,
            WORKER.into(),
            &env,
        );
        d.collect();
        out
    }));

    // After a failure the old token is stale, and so is the transient attempt's before start.
    d.fail_wft();
    not_found(d.unchanged(|d| d.try_complete_wft(2, 1, completion(vec![]))));
    not_found(d.unchanged(|d| d.try_complete_wft(5, 2, completion(vec![]))));
    not_found(d.unchanged(|d| d.try_start_wft(5, 1, "poll-x", TASK_QUEUE)));
    d.poll_wft();
    d.complete_wft(vec![]);
    not_found(d.unchanged(|d| d.try_complete_wft(5, 2, completion(vec![]))));
}

/// RecordWorkflowTaskStarted: the same poll request again is idempotent; another poll gets
/// TaskAlreadyStarted.
#[test]
fn workflow_task_started_twice() {
    let mut d = Driver::start();
    let first = d.try_start_wft(2, 1, "poll-a", TASK_QUEUE).unwrap();
    let again = d
        .unchanged(|d| d.try_start_wft(2, 1, "poll-a", TASK_QUEUE))
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(
        d.unchanged(|d| d.try_start_wft(2, 1, "poll-b", TASK_QUEUE)),
        Err(Error::TaskAlreadyStarted)
    );

    // The same for a transient attempt.
    d.fail_wft();
    let first = d.try_start_wft(5, 2, "poll-c", TASK_QUEUE).unwrap();
    let again = d
        .unchanged(|d| d.try_start_wft(5, 2, "poll-c", TASK_QUEUE))
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(again.transient_events.len(), 2);
}

/// Activity tokens of an earlier attempt are stale; starting twice behaves like workflow tasks.
#[test]
fn stale_activity_tokens() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![schedule_activity("a")]);
    let first = d.try_start_activity(5, 1, "act-a").unwrap();
    let again = d
        .unchanged(|d| d.try_start_activity(5, 1, "act-a"))
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(
        d.unchanged(|d| d.try_start_activity(5, 1, "act-b")),
        Err(Error::TaskAlreadyStarted)
    );
    not_found(d.unchanged(|d| d.try_start_activity(5, 2, "act-b")));
    not_found(d.unchanged(|d| d.try_start_activity(99, 1, "act-b")));

    d.fail_activity(5, app_failure("boom", "Err", false));
    not_found(d.unchanged(|d| d.try_complete_activity(5, 1)));
    not_found(d.unchanged(|d| d.try_heartbeat(5, 1, "x")));
    not_found(d.unchanged(|d| d.try_fail_activity(5, 1, Failure::default())));
    // Attempt 2 exists but is not started yet.
    not_found(d.unchanged(|d| d.try_complete_activity(5, 2)));
    d.fire(&d.task(TaskKind::ActivityRetry));
    d.start_activity(5);
    d.complete_activity(5);
    not_found(d.unchanged(|d| d.try_complete_activity(5, 2)));
}

/// Transitions from the wrong state are errors: closing or heartbeating an activity that is
/// not started, anything on a closed run.
#[test]
fn invalid_transitions_are_errors() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![schedule_activity("a"), start_timer("t", 1_000)]);
    not_found(d.unchanged(|d| d.try_complete_activity(5, 1)));
    not_found(d.unchanged(|d| d.try_heartbeat(5, 1, "x")));
    not_found(d.unchanged(|d| d.try_fail_activity(5, 1, Failure::default())));
    let env = d.env();
    not_found(d.unchanged(|d| {
        let out = d.wf.cancel_activity(5, 1, None, WORKER.into(), &env);
        d.collect();
        out
    }));
    not_found(d.unchanged(|d| d.try_complete_wft(2, 1, completion(vec![]))));

    d.start_activity(5);
    d.terminate().unwrap();
    not_found(d.unchanged(|d| d.try_complete_activity(5, 1)));
    not_found(d.unchanged(|d| d.try_heartbeat(5, 1, "x")));
    assert_eq!(
        d.unchanged(|d| d.try_start_wft(2, 1, "poll-z", TASK_QUEUE)),
        Err(Error::WorkflowCompleted)
    );
    // Timer tasks of a closed run are dropped quietly.
    let timer = d.task(TaskKind::UserTimer);
    d.unchanged(|d| d.try_fire(&timer)).unwrap();
    let timeout = d.task(TaskKind::ActivityTimeout);
    d.unchanged(|d| d.try_fire(&timeout)).unwrap();
}

/// Commands the server does not support, or without attributes, fail the task; no panic.
#[test]
fn unsupported_commands_fail_the_task() {
    let mut d = Driver::start();
    d.poll_wft();
    let outcome = d.complete_wft(vec![Command::default()]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::UnhandledCommand
    );
    assert_eq!(d.last_types(), vec![E::WorkflowTaskFailed]);
}
