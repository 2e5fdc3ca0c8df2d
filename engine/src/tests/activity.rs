//! Activity scenarios: lazily written ActivityTaskStarted, buffering while a workflow task is
//! in flight, server-side retries, timeouts and cancellation (reference §2.3).

use temporalio_protos::temporal::api::{
    enums::v1::{RetryState, TimeoutType, WorkflowTaskFailedCause},
    failure::v1::failure::FailureInfo,
};

use super::driver::*;
use crate::TaskKind;
use crate::events::BUFFERED_EVENT_ID;
use crate::time::{duration, duration_ms};

/// A run whose first workflow task scheduled activity `a` (event 5) with `adjust` applied.
fn with_activity(
    adjust: impl FnOnce(
        &mut temporalio_protos::temporal::api::command::v1::ScheduleActivityTaskCommandAttributes,
    ),
) -> Driver {
    let mut d = Driver::start_with(|p| {
        p.attributes.workflow_run_timeout = Some(duration(3_600_000));
    });
    d.poll_wft();
    d.complete_wft(vec![schedule_activity_with("a", 10_000, adjust)]);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskCompleted, E::ActivityTaskScheduled]
    );
    d
}

/// Rule 1: an activity closing while a workflow task is started is buffered; on flush its
/// Started/Completed pair moves behind the other buffered events and the completed event
/// points at the started event's real id.
#[test]
fn activity_closing_during_started_task_is_buffered_and_reordered() {
    let mut d = with_activity(|_| {});
    d.start_activity(5);
    d.signal("s1");
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowExecutionSignaled, E::WorkflowTaskScheduled]
    );
    d.poll_wft();
    d.complete_activity(5);
    assert!(d.last_events.is_empty());
    assert_eq!(
        d.buffered_types(),
        vec![E::ActivityTaskStarted, E::ActivityTaskCompleted]
    );
    assert_eq!(
        attrs!(
            d.wf.state.buffered_events[1],
            ActivityTaskCompletedEventAttributes
        )
        .started_event_id,
        BUFFERED_EVENT_ID
    );
    d.signal("s2");
    d.complete_wft(vec![]);
    // Only the closing event moves behind the signal; the started event keeps its place
    // (as the reference server writes it).
    assert_eq!(
        d.types_from(9),
        vec![
            E::WorkflowTaskCompleted,
            E::ActivityTaskStarted,
            E::WorkflowExecutionSignaled,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled,
        ]
    );
    let completed = attrs!(d.event(12), ActivityTaskCompletedEventAttributes);
    assert_eq!(
        (completed.scheduled_event_id, completed.started_event_id),
        (5, 10)
    );
    assert_eq!(
        attrs!(d.event(11), WorkflowExecutionSignaledEventAttributes).signal_name,
        "s2"
    );
}

/// Retryable failures write nothing: the attempt grows and an ActivityRetry timer fires after
/// the policy's backoff (1 s, then 2 s); the final ActivityTaskStarted carries attempt 3 and
/// the previous failure.
#[test]
fn retries_with_backoff_then_completes() {
    let mut d = with_activity(|a| a.retry_policy = Some(retry_policy(1_000, 0)));
    d.start_activity(5);
    d.fail_activity(5, app_failure("boom 1", "Err", false));
    assert!(d.last_events.is_empty());
    assert_eq!(d.activity(5).attempt, 2);
    assert_eq!(d.last_task_kinds(), vec![TaskKind::ActivityRetry]);
    let retry = d.task(TaskKind::ActivityRetry);
    assert_eq!((retry.attempt, retry.fire_time_ms), (2, d.now_ms + 1_000));
    d.fire(&retry);
    let dispatch = d.task(TaskKind::DispatchActivityTask);
    assert_eq!((dispatch.scheduled_event_id, dispatch.attempt), (5, 2));

    d.start_activity(5);
    d.fail_activity(5, app_failure("boom 2", "Err", false));
    let retry = d.task(TaskKind::ActivityRetry);
    assert_eq!((retry.attempt, retry.fire_time_ms), (3, d.now_ms + 2_000));
    d.fire(&retry);
    d.start_activity(5);
    d.unchanged(|d| d.try_complete_activity(5, 2)).unwrap_err();
    d.complete_activity(5);
    assert_eq!(
        d.last_types(),
        vec![
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled
        ]
    );
    let started = attrs!(d.event(6), ActivityTaskStartedEventAttributes);
    assert_eq!(started.attempt, 3);
    assert_eq!(started.last_failure.as_ref().unwrap().message, "boom 2");
    assert!(d.wf.state.activities.is_empty());
}

/// A non-retryable failure (flag or listed type) ends the activity at once.
#[test]
fn non_retryable_failure_fails_the_activity() {
    let mut d = with_activity(|_| {});
    d.start_activity(5);
    d.fail_activity(5, app_failure("fatal", "Err", true));
    assert_eq!(
        d.last_types(),
        vec![
            E::ActivityTaskStarted,
            E::ActivityTaskFailed,
            E::WorkflowTaskScheduled
        ]
    );
    let failed = attrs!(d.event(7), ActivityTaskFailedEventAttributes);
    assert_eq!(failed.retry_state, RetryState::NonRetryableFailure as i32);
    assert_eq!((failed.scheduled_event_id, failed.started_event_id), (5, 6));
    assert_eq!(failed.failure.as_ref().unwrap().message, "fatal");

    let mut d = with_activity(|a| {
        let mut policy = retry_policy(1_000, 0);
        policy.non_retryable_error_types = vec!["Fatal".into()];
        a.retry_policy = Some(policy);
    });
    d.start_activity(5);
    d.fail_activity(5, app_failure("fatal", "Fatal", false));
    let failed = attrs!(d.event(7), ActivityTaskFailedEventAttributes);
    assert_eq!(failed.retry_state, RetryState::NonRetryableFailure as i32);
}

/// The last allowed attempt's failure ends the activity with MAXIMUM_ATTEMPTS_REACHED.
#[test]
fn maximum_attempts_fail_the_activity() {
    let mut d = with_activity(|a| a.retry_policy = Some(retry_policy(1_000, 2)));
    d.start_activity(5);
    d.fail_activity(5, app_failure("boom 1", "Err", false));
    d.fire(&d.task(TaskKind::ActivityRetry));
    d.start_activity(5);
    d.fail_activity(5, app_failure("boom 2", "Err", false));
    assert_eq!(
        d.last_types(),
        vec![
            E::ActivityTaskStarted,
            E::ActivityTaskFailed,
            E::WorkflowTaskScheduled
        ]
    );
    assert_eq!(
        attrs!(d.event(6), ActivityTaskStartedEventAttributes).attempt,
        2
    );
    let failed = attrs!(d.event(7), ActivityTaskFailedEventAttributes);
    assert_eq!(
        failed.retry_state,
        RetryState::MaximumAttemptsReached as i32
    );
}

/// A failure whose backoff would pass the schedule-to-close deadline is final (TIMEOUT).
#[test]
fn retry_past_schedule_to_close_is_not_attempted() {
    let mut d = with_activity(|a| a.schedule_to_close_timeout = Some(duration(30_000)));
    d.start_activity(5);
    d.advance(29_500);
    d.fail_activity(5, app_failure("late", "Err", false));
    let failed = attrs!(d.event(7), ActivityTaskFailedEventAttributes);
    assert_eq!(failed.retry_state, RetryState::Timeout as i32);
}

/// A heartbeat timer that fires before the (moved) deadline re-arms itself; after the
/// deadline with no attempts left → ActivityTaskTimedOut(HEARTBEAT) with the last details.
#[test]
fn heartbeat_timeout() {
    let mut d = with_activity(|a| {
        a.start_to_close_timeout = Some(duration(60_000));
        a.heartbeat_timeout = Some(duration(10_000));
        a.retry_policy = Some(retry_policy(1_000, 1));
    });
    d.start_activity(5);
    let started_at = d.now_ms;
    let timer = d.activity_timeout(5, TimeoutType::Heartbeat);
    assert_eq!(timer.fire_time_ms, started_at + 10_000);
    d.advance(5_000);
    assert!(!d.heartbeat(5, "progress"));
    assert!(d.last_events.is_empty() && d.last_tasks.is_empty());

    d.fire(&timer);
    assert!(d.last_events.is_empty());
    let rearmed = d.activity_timeout(5, TimeoutType::Heartbeat);
    assert_eq!(rearmed.fire_time_ms, started_at + 15_000);

    d.fire(&rearmed);
    assert_eq!(
        d.last_types(),
        vec![
            E::ActivityTaskStarted,
            E::ActivityTaskTimedOut,
            E::WorkflowTaskScheduled
        ]
    );
    let timed_out = attrs!(d.event(7), ActivityTaskTimedOutEventAttributes);
    assert_eq!(
        timed_out.retry_state,
        RetryState::MaximumAttemptsReached as i32
    );
    assert_eq!(timed_out.started_event_id, 6);
    let Some(FailureInfo::TimeoutFailureInfo(info)) =
        &timed_out.failure.as_ref().unwrap().failure_info
    else {
        panic!("a timeout failure: {timed_out:?}");
    };
    assert_eq!(info.timeout_type, TimeoutType::Heartbeat as i32);
    assert_eq!(info.last_heartbeat_details, Some(payloads("progress")));
}

/// Schedule-to-start timeouts are not retried; nothing was started, so no started event.
#[test]
fn schedule_to_start_timeout_is_final() {
    let mut d = with_activity(|a| a.schedule_to_start_timeout = Some(duration(5_000)));
    let dispatch = d.task(TaskKind::DispatchActivityTask);
    assert_eq!(dispatch.schedule_to_start_ms, 5_000);
    let timer = d.activity_timeout(5, TimeoutType::ScheduleToStart);
    assert_eq!(timer.fire_time_ms, d.now_ms + 5_000);
    d.fire(&timer);
    assert_eq!(
        d.last_types(),
        vec![E::ActivityTaskTimedOut, E::WorkflowTaskScheduled]
    );
    let timed_out = attrs!(d.event(6), ActivityTaskTimedOutEventAttributes);
    assert_eq!(timed_out.retry_state, RetryState::Timeout as i32);
    assert_eq!(timed_out.started_event_id, 0);
}

/// Start-to-close timeouts are retried like failures; the old attempt's timer is stale.
#[test]
fn start_to_close_timeout_is_retried() {
    let mut d = with_activity(|_| {});
    d.start_activity(5);
    let timer = d.activity_timeout(5, TimeoutType::StartToClose);
    d.fire(&timer);
    assert!(d.last_events.is_empty());
    assert_eq!(d.activity(5).attempt, 2);
    let Some(FailureInfo::TimeoutFailureInfo(info)) =
        &d.activity(5).last_failure.as_ref().unwrap().failure_info
    else {
        panic!("the last failure is the timeout");
    };
    assert_eq!(info.timeout_type, TimeoutType::StartToClose as i32);
    let retry = d.task(TaskKind::ActivityRetry);
    assert_eq!(retry.fire_time_ms, d.now_ms + 1_000);
    d.unchanged(|d| d.try_fire(&timer)).unwrap();

    d.fire(&retry);
    d.start_activity(5);
    d.complete_activity(5);
    assert_eq!(
        attrs!(d.event(6), ActivityTaskStartedEventAttributes).attempt,
        2
    );
}

/// Schedule-to-close ends the retry loop whatever the attempt.
#[test]
fn schedule_to_close_timeout_is_final() {
    let mut d = with_activity(|a| a.schedule_to_close_timeout = Some(duration(30_000)));
    let scheduled = attrs!(d.event(5), ActivityTaskScheduledEventAttributes);
    assert_eq!(
        duration_ms(scheduled.schedule_to_start_timeout.as_ref()),
        30_000
    );
    assert_eq!(
        duration_ms(scheduled.start_to_close_timeout.as_ref()),
        10_000
    );
    let timer = d.activity_timeout(5, TimeoutType::ScheduleToClose);
    assert_eq!(timer.fire_time_ms, T0 + 30_000);
    d.start_activity(5);
    d.fail_activity(5, app_failure("boom", "Err", false));
    d.fire(&d.task(TaskKind::ActivityRetry));
    d.start_activity(5);
    d.fire(&timer);
    assert_eq!(
        d.last_types(),
        vec![
            E::ActivityTaskStarted,
            E::ActivityTaskTimedOut,
            E::WorkflowTaskScheduled
        ]
    );
    assert_eq!(
        attrs!(d.event(6), ActivityTaskStartedEventAttributes).attempt,
        2
    );
    let timed_out = attrs!(d.event(7), ActivityTaskTimedOutEventAttributes);
    assert_eq!(timed_out.retry_state, RetryState::Timeout as i32);
}

/// Cancelling an activity that has not started: CancelRequested and Canceled at once, and a
/// new workflow task.
#[test]
fn cancel_of_unstarted_activity_is_immediate() {
    let mut d = with_activity(|_| {});
    d.signal("s");
    d.poll_wft();
    d.complete_wft(vec![request_cancel_activity(5)]);
    assert_eq!(
        d.types_from(9),
        vec![
            E::WorkflowTaskCompleted,
            E::ActivityTaskCancelRequested,
            E::ActivityTaskCanceled,
            E::WorkflowTaskScheduled,
        ]
    );
    let requested = attrs!(d.event(10), ActivityTaskCancelRequestedEventAttributes);
    assert_eq!(
        (
            requested.scheduled_event_id,
            requested.workflow_task_completed_event_id
        ),
        (5, 9)
    );
    let canceled = attrs!(d.event(11), ActivityTaskCanceledEventAttributes);
    assert_eq!(
        (
            canceled.scheduled_event_id,
            canceled.started_event_id,
            canceled.latest_cancel_requested_event_id
        ),
        (5, 0, 10)
    );
    assert!(d.wf.state.activities.is_empty());
    d.unchanged(|d| d.try_start_activity(5, 1, "late-poll"))
        .unwrap_err();
}

/// Cancelling a started activity: only CancelRequested; the worker learns it from the
/// heartbeat and answers RespondActivityTaskCanceled → Started + Canceled + a new task.
#[test]
fn cancel_of_started_activity_goes_through_the_worker() {
    let mut d = with_activity(|_| {});
    d.start_activity(5);
    assert!(!d.heartbeat(5, "working"));
    d.signal("s");
    d.poll_wft();
    d.complete_wft(vec![request_cancel_activity(5)]);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskCompleted, E::ActivityTaskCancelRequested]
    );
    assert!(d.wf.state.workflow_task.is_none());
    assert!(d.heartbeat(5, "stopping"));
    d.cancel_activity(5);
    assert_eq!(
        d.last_types(),
        vec![
            E::ActivityTaskStarted,
            E::ActivityTaskCanceled,
            E::WorkflowTaskScheduled
        ]
    );
    let canceled = attrs!(d.event(12), ActivityTaskCanceledEventAttributes);
    assert_eq!(
        (
            canceled.scheduled_event_id,
            canceled.started_event_id,
            canceled.latest_cancel_requested_event_id
        ),
        (5, 11, 10)
    );
    assert_eq!(canceled.details, Some(payloads("canceled")));
}

/// A failure after a cancel request is final (CANCEL_REQUESTED), not retried.
#[test]
fn failure_after_cancel_request_is_not_retried() {
    let mut d = with_activity(|_| {});
    d.start_activity(5);
    d.signal("s");
    d.poll_wft();
    d.complete_wft(vec![request_cancel_activity(5)]);
    d.fail_activity(5, app_failure("boom", "Err", false));
    let failed = attrs!(d.event(12), ActivityTaskFailedEventAttributes);
    assert_eq!(failed.retry_state, RetryState::CancelRequested as i32);
}

/// Timeout normalisation: only start-to-close set → schedule-to-close and schedule-to-start
/// default to the run timeout; the heartbeat timeout is clamped to start-to-close.
#[test]
fn timeouts_are_normalised() {
    let d = with_activity(|a| a.heartbeat_timeout = Some(duration(20_000)));
    let scheduled = attrs!(d.event(5), ActivityTaskScheduledEventAttributes);
    assert_eq!(
        duration_ms(scheduled.schedule_to_close_timeout.as_ref()),
        3_600_000
    );
    assert_eq!(
        duration_ms(scheduled.schedule_to_start_timeout.as_ref()),
        3_600_000
    );
    assert_eq!(
        duration_ms(scheduled.start_to_close_timeout.as_ref()),
        10_000
    );
    assert_eq!(duration_ms(scheduled.heartbeat_timeout.as_ref()), 10_000);
    assert_eq!(
        d.activity_timeout(5, TimeoutType::ScheduleToClose)
            .fire_time_ms,
        T0 + 3_600_000
    );
}

/// Bad ScheduleActivityTask commands fail the workflow task and leave no trace.
#[test]
fn bad_schedule_activity_commands_fail_the_task() {
    let mut d = Driver::start();
    d.poll_wft();
    let outcome = d.complete_wft(vec![schedule_activity_with("a", 0, |_| {})]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::BadScheduleActivityAttributes
    );
    assert_eq!(d.last_types(), vec![E::WorkflowTaskFailed]);

    // A retry that fails again is refused with InvalidArgument and changes nothing: the task
    // stays started until its timeout (Temporal's respondworkflowtaskcompleted/api.go).
    d.poll_wft();
    let (scheduled, attempt) = d.started_wft();
    let result = d.unchanged(|d| {
        d.try_complete_wft(
            scheduled,
            attempt,
            completion(vec![schedule_activity("a"), schedule_activity("a")]),
        )
    });
    assert_eq!(
        result.unwrap_err(),
        crate::Error::InvalidArgument("Activity ID a already exists.".into())
    );
    assert!(d.wf.state.activities.is_empty());

    let mut d = with_activity(|_| {});
    d.signal("s");
    d.poll_wft();
    let outcome = d.complete_wft(vec![request_cancel_activity(99)]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::BadRequestCancelActivityAttributes
    );
}

/// request_eager_execution: the activity is started in the completion and not dispatched.
#[test]
fn eager_activity_is_started_in_the_completion() {
    let mut d = Driver::start();
    d.poll_wft();
    let outcome = d.complete_wft(vec![schedule_activity_with("a", 10_000, |a| {
        a.request_eager_execution = true;
    })]);
    assert_eq!(outcome.eager_activities.len(), 1);
    assert_eq!(outcome.eager_activities[0].attempt, 1);
    assert!(
        !d.last_task_kinds()
            .contains(&TaskKind::DispatchActivityTask)
    );
    assert_ne!(d.activity(5).started_time_ms, 0);
    d.complete_activity(5);
    assert_eq!(
        d.last_types(),
        vec![
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled
        ]
    );
}

/// The worker asks to cancel an activity whose Started/Completed pair is still in the buffer
/// (it completed while the task ran): Temporal records the request (HasActivityFinishEvent)
/// and the buffered completion follows; the task is not failed.
#[test]
fn cancel_of_activity_closed_in_the_buffer_is_recorded() {
    let mut d = with_activity(|_| {});
    d.start_activity(5);
    d.signal("s");
    d.poll_wft();
    d.complete_activity(5);
    let outcome = d.complete_wft(vec![request_cancel_activity(5)]);
    assert!(outcome.rejected.is_none(), "{:?}", outcome.rejected);
    assert_eq!(
        d.types_from(9),
        vec![
            E::WorkflowTaskCompleted,
            E::ActivityTaskCancelRequested,
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled,
        ]
    );
    assert_eq!(
        attrs!(d.event(12), ActivityTaskCompletedEventAttributes).started_event_id,
        11
    );
}

/// A second cancel request for the same activity is refused, as in Temporal.
#[test]
fn duplicate_cancel_request_fails_the_task() {
    let mut d = with_activity(|_| {});
    d.start_activity(5);
    d.signal("s1");
    d.poll_wft();
    d.complete_wft(vec![request_cancel_activity(5)]);
    d.signal("s2");
    d.poll_wft();
    let outcome = d.complete_wft(vec![request_cancel_activity(5)]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::BadRequestCancelActivityAttributes
    );
}

/// Cancelling a not-started activity: the ActivityTaskCanceled waits until the completion's
/// commands are applied (so it follows them), and is dropped when they close the run — both
/// as the reference server writes it.
#[test]
fn unstarted_cancel_follows_the_commands_and_is_dropped_on_close() {
    let mut d = with_activity(|_| {});
    d.signal("s");
    d.poll_wft();
    d.complete_wft(vec![request_cancel_activity(5), start_timer("t", 60_000)]);
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskCompleted,
            E::ActivityTaskCancelRequested,
            E::TimerStarted,
            E::ActivityTaskCanceled,
            E::WorkflowTaskScheduled,
        ]
    );

    let mut d = with_activity(|_| {});
    d.signal("s");
    d.poll_wft();
    d.complete_wft(vec![request_cancel_activity(5), complete_workflow()]);
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskCompleted,
            E::ActivityTaskCancelRequested,
            E::WorkflowExecutionCompleted,
        ]
    );
}
