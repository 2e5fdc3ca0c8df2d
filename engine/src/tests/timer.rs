//! User-timer scenarios: fire, cancel (including a fire still in the buffer), and commands
//! that fail the workflow task and are rolled back.

use temporalio_protos::temporal::api::enums::v1::WorkflowTaskFailedCause;

use super::driver::*;
use crate::TaskKind;

/// A run whose first workflow task started timer `t` (event 5, 1 s), then got a signal and
/// started its second task (events 6–8).
fn timer_then_second_task() -> Driver {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![start_timer("t", 1_000)]);
    d.signal("s");
    d.poll_wft();
    assert_eq!(d.wf.state.next_event_id, 9);
    d
}

/// CancelTimer → TimerCanceled; the timer task firing later does nothing.
#[test]
fn cancel_timer_command() {
    let mut d = timer_then_second_task();
    d.complete_wft(vec![cancel_timer("t")]);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskCompleted, E::TimerCanceled]
    );
    let canceled = attrs!(d.event(10), TimerCanceledEventAttributes);
    assert_eq!(
        (
            canceled.timer_id.as_str(),
            canceled.started_event_id,
            canceled.workflow_task_completed_event_id
        ),
        ("t", 5, 9)
    );
    assert_eq!(canceled.identity, WORKER);
    assert!(d.wf.state.timers.is_empty());
    let timer = d.task(TaskKind::UserTimer);
    d.unchanged(|d| d.try_fire(&timer)).unwrap();
}

/// Reference §2.3: a TimerFired still in the buffer when the worker cancels that timer is
/// dropped, and nothing is left to schedule a task for.
#[test]
fn cancel_drops_a_buffered_fire() {
    let mut d = timer_then_second_task();
    d.fire(&d.task(TaskKind::UserTimer));
    assert_eq!(d.buffered_types(), vec![E::TimerFired]);
    d.complete_wft(vec![cancel_timer("t")]);
    assert_eq!(
        d.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::TimerStarted,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::TimerCanceled,
        ]
    );
    assert_eq!(
        attrs!(d.event(10), TimerCanceledEventAttributes).started_event_id,
        5
    );
    assert!(d.wf.state.buffered_events.is_empty());
    assert!(d.wf.state.workflow_task.is_none());
}

/// A timer firing while the task is only scheduled is stored at once and needs no new task.
#[test]
fn fire_while_task_scheduled_is_not_buffered() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![start_timer("t", 1_000), start_timer("u", 1_000)]);
    let timer_t = d.task_where(TaskKind::UserTimer, |t| t.timer_id == "t");
    let timer_u = d.task_where(TaskKind::UserTimer, |t| t.timer_id == "u");
    d.fire(&timer_t);
    assert_eq!(
        d.last_types(),
        vec![E::TimerFired, E::WorkflowTaskScheduled]
    );
    d.fire(&timer_u);
    assert_eq!(d.last_types(), vec![E::TimerFired]);
    assert_eq!(attrs!(d.event(9), TimerFiredEventAttributes).timer_id, "u");
}

/// Duplicate timer id → WorkflowTaskFailed(START_TIMER_DUPLICATE_ID); every event and task of
/// the completion is rolled back (no TimerStarted for the good command either).
#[test]
fn duplicate_timer_id_fails_the_task_and_rolls_back() {
    let mut d = timer_then_second_task();
    let outcome = d.complete_wft(vec![start_timer("x", 1_000), start_timer("t", 1_000)]);
    let rejected = outcome.rejected.expect("the completion is rejected");
    assert_eq!(
        rejected.cause,
        WorkflowTaskFailedCause::StartTimerDuplicateId
    );
    assert_eq!(d.last_types(), vec![E::WorkflowTaskFailed]);
    let failed = attrs!(d.event(9), WorkflowTaskFailedEventAttributes);
    assert_eq!(
        failed.cause,
        WorkflowTaskFailedCause::StartTimerDuplicateId as i32
    );
    assert_eq!((failed.scheduled_event_id, failed.started_event_id), (7, 8));
    assert_eq!(d.wf.state.timers.keys().collect::<Vec<_>>(), vec!["t"]);
    assert_eq!(d.last_task_kinds(), vec![TaskKind::DispatchWorkflowTask]);
    assert_eq!(d.wf.state.last_completed_wft_started_event_id, 3);

    // Within one completion too.
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![start_timer("a", 1_000), start_timer("a", 1_000)]);
    assert_eq!(d.last_types(), vec![E::WorkflowTaskFailed]);
    assert!(d.wf.state.timers.is_empty());
}

/// Other bad timer commands fail the task with their own causes.
#[test]
fn bad_timer_commands_fail_the_task() {
    let mut d = Driver::start();
    d.poll_wft();
    let outcome = d.complete_wft(vec![cancel_timer("nope")]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::BadCancelTimerAttributes
    );
    // The retry (attempt 2) is refused without a trace.
    d.poll_wft();
    let (scheduled, attempt) = d.started_wft();
    let result = d.unchanged(|d| {
        d.try_complete_wft(scheduled, attempt, completion(vec![start_timer("t", 0)]))
    });
    assert!(matches!(result, Err(crate::Error::InvalidArgument(_))));
}

/// A command's user metadata (the timer summary SDKs set) is copied onto its event.
#[test]
fn command_metadata_lands_on_its_event() {
    use temporalio_protos::temporal::api::sdk::v1::UserMetadata;
    let mut d = Driver::start();
    d.poll_wft();
    let mut timer = start_timer("t", 60_000);
    let metadata = UserMetadata {
        summary: payloads("nap").payloads.into_iter().next(),
        details: None,
    };
    timer.user_metadata = Some(metadata.clone());
    d.complete_wft(vec![timer]);
    assert_eq!(d.event(5).user_metadata, Some(metadata));
    assert_eq!(d.event(4).user_metadata, None);
}
