//! Durations in worker commands are range-checked as Temporal checks them: a negative one or
//! one whose seconds and nanos disagree in sign fails the workflow task with the command's
//! BAD_*_ATTRIBUTES cause and Temporal's message; a huge one is capped to 100 years. Nothing
//! overflows (messages checked against the reference server).

use prost_wkt_types::Duration;
use temporalio_protos::temporal::api::{
    command::v1::{
        Command, StartChildWorkflowExecutionCommandAttributes, command::Attributes as Cmd,
    },
    common::v1::{RetryPolicy, WorkflowType},
    enums::v1::{CommandType, WorkflowTaskFailedCause},
    workflowservice::v1::RespondWorkflowTaskCompletedRequest,
};

use super::driver::*;
use crate::time::{MAX_DURATION_SECONDS, duration_ms};

const NEGATIVE: Duration = Duration {
    seconds: -1,
    nanos: 0,
};
const MISMATCHED: Duration = Duration {
    seconds: 1,
    nanos: -1,
};
const HUGE: Duration = Duration {
    seconds: i64::MAX,
    nanos: 999_999_999,
};
const MAX_MS: i64 = MAX_DURATION_SECONDS * 1000;

/// Completes the first workflow task with `command` and returns the rejection's cause and
/// the WorkflowTaskFailed failure's message.
fn rejected(command: Command) -> (WorkflowTaskFailedCause, String) {
    let mut d = Driver::start();
    d.poll_wft();
    let outcome = d.complete_wft(vec![command]);
    let err = outcome.rejected.expect("the completion is rejected");
    assert_eq!(d.last_types(), vec![E::WorkflowTaskFailed]);
    let failed = attrs!(d.event(4), WorkflowTaskFailedEventAttributes);
    assert_eq!(failed.cause, err.cause as i32);
    let message = failed.failure.as_ref().unwrap().message.clone();
    assert!(
        message.ends_with(&err.message),
        "{message} / {}",
        err.message
    );
    (err.cause, err.message)
}

fn timer(d: Duration) -> Command {
    let mut c = start_timer("t1", 1_000);
    if let Some(Cmd::StartTimerCommandAttributes(a)) = c.attributes.as_mut() {
        a.start_to_fire_timeout = Some(d);
    }
    c
}

fn child(adjust: impl FnOnce(&mut StartChildWorkflowExecutionCommandAttributes)) -> Command {
    let mut a = StartChildWorkflowExecutionCommandAttributes {
        namespace: "default".into(),
        workflow_id: "c1".into(),
        workflow_type: Some(WorkflowType { name: "w".into() }),
        ..Default::default()
    };
    adjust(&mut a);
    Command {
        command_type: CommandType::StartChildWorkflowExecution as i32,
        attributes: Some(Cmd::StartChildWorkflowExecutionCommandAttributes(a)),
        ..Default::default()
    }
}

fn continue_as_new_with(
    adjust: impl FnOnce(
        &mut temporalio_protos::temporal::api::command::v1::ContinueAsNewWorkflowExecutionCommandAttributes,
    ),
) -> Command {
    let mut c = continue_as_new();
    if let Some(Cmd::ContinueAsNewWorkflowExecutionCommandAttributes(a)) = c.attributes.as_mut() {
        a.workflow_type = Some(WorkflowType { name: "w".into() });
        a.task_queue = Some(temporalio_protos::temporal::api::taskqueue::v1::TaskQueue {
            name: "x".into(),
            ..Default::default()
        });
        adjust(a);
    }
    c
}

#[test]
fn bad_timer_durations_fail_the_task() {
    assert_eq!(
        rejected(timer(NEGATIVE)),
        (
            WorkflowTaskFailedCause::BadStartTimerAttributes,
            "An invalid StartToFireTimeout is set on StartTimerCommand: negative duration. TimerId=t1"
                .into()
        )
    );
    assert_eq!(
        rejected(timer(MISMATCHED)).1,
        "An invalid StartToFireTimeout is set on StartTimerCommand: duration has seconds and nanos with different signs. TimerId=t1"
    );
    assert_eq!(
        rejected(timer(Duration {
            seconds: 0,
            nanos: 1_000_000_000
        }))
        .1,
        "An invalid StartToFireTimeout is set on StartTimerCommand: duration has out-of-range nanos. TimerId=t1"
    );
}

#[test]
fn a_huge_timer_is_capped_to_a_hundred_years() {
    let mut d = Driver::start();
    d.poll_wft();
    let outcome = d.complete_wft(vec![timer(HUGE)]);
    assert!(outcome.rejected.is_none());
    let started = attrs!(d.event(5), TimerStartedEventAttributes);
    assert_eq!(duration_ms(started.start_to_fire_timeout.as_ref()), MAX_MS);
    assert_eq!(d.wf.state.timers["t1"].expiry_time_ms, T0 + MAX_MS);
}

#[test]
fn bad_activity_durations_fail_the_task() {
    let activity = |adjust: fn(&mut _)| rejected(schedule_activity_with("a", 10_000, adjust));
    let (cause, message) = activity(|a| a.schedule_to_close_timeout = Some(NEGATIVE));
    assert_eq!(
        cause,
        WorkflowTaskFailedCause::BadScheduleActivityAttributes
    );
    assert_eq!(message, "invalid ScheduleToCloseTimeout: negative duration");
    assert_eq!(
        activity(|a| a.schedule_to_start_timeout = Some(NEGATIVE)).1,
        "invalid ScheduleToStartTimeout: negative duration"
    );
    assert_eq!(
        activity(|a| a.start_to_close_timeout = Some(NEGATIVE)).1,
        "invalid StartToCloseTimeout: negative duration"
    );
    assert_eq!(
        activity(|a| a.heartbeat_timeout = Some(MISMATCHED)).1,
        "invalid HeartbeatTimeout: duration has seconds and nanos with different signs"
    );
    assert_eq!(
        activity(|a| {
            a.retry_policy = Some(RetryPolicy {
                initial_interval: Some(NEGATIVE),
                ..Default::default()
            })
        })
        .1,
        "invalid InitialInterval set on retry policy: negative duration"
    );
    assert_eq!(
        activity(|a| {
            a.retry_policy = Some(RetryPolicy {
                maximum_interval: Some(NEGATIVE),
                ..Default::default()
            })
        })
        .1,
        "invalid MaximumInterval set on retry policy: negative duration"
    );
}

#[test]
fn huge_activity_durations_are_capped() {
    let mut d = Driver::start();
    d.poll_wft();
    let outcome = d.complete_wft(vec![schedule_activity_with("a", 10_000, |a| {
        a.start_to_close_timeout = Some(HUGE);
        a.heartbeat_timeout = Some(HUGE);
        a.retry_policy = Some(RetryPolicy {
            initial_interval: Some(HUGE),
            ..Default::default()
        });
    })]);
    assert!(outcome.rejected.is_none());
    let scheduled = attrs!(d.event(5), ActivityTaskScheduledEventAttributes);
    assert_eq!(
        duration_ms(scheduled.start_to_close_timeout.as_ref()),
        MAX_MS
    );
    assert_eq!(duration_ms(scheduled.heartbeat_timeout.as_ref()), MAX_MS);
    let retry = scheduled.retry_policy.as_ref().unwrap();
    assert_eq!(duration_ms(retry.initial_interval.as_ref()), MAX_MS);
    // The activity starts and fails; its retry backoff is far off but does not overflow.
    d.start_activity(5);
    d.fail_activity(5, failure("boom"));
    assert!(d.activity(5).scheduled_time_ms > T0);
}

#[test]
fn bad_child_durations_fail_the_task() {
    let (cause, message) = rejected(child(|a| a.workflow_execution_timeout = Some(NEGATIVE)));
    assert_eq!(
        cause,
        WorkflowTaskFailedCause::BadStartChildExecutionAttributes
    );
    assert_eq!(
        message,
        "Invalid WorkflowExecutionTimeout on StartChildWorkflowExecutionCommand: negative duration. WorkflowId=c1 WorkflowType=w Namespace=default"
    );
    assert_eq!(
        rejected(child(|a| a.workflow_run_timeout = Some(MISMATCHED))).1,
        "Invalid WorkflowRunTimeout on StartChildWorkflowExecutionCommand: duration has seconds and nanos with different signs. WorkflowId=c1 WorkflowType=w Namespace=default"
    );
    assert_eq!(
        rejected(child(|a| a.workflow_task_timeout = Some(NEGATIVE))).1,
        "Invalid WorkflowTaskTimeout on StartChildWorkflowExecutionCommand: negative duration. WorkflowId=c1 WorkflowType=w Namespace=default"
    );
    assert_eq!(
        rejected(child(|a| {
            a.retry_policy = Some(RetryPolicy {
                initial_interval: Some(NEGATIVE),
                ..Default::default()
            })
        }))
        .1,
        "invalid WorkflowRetryPolicy on StartChildWorkflowExecutionCommand: invalid InitialInterval set on retry policy: negative duration. WorkflowId=c1 WorkflowType=w Namespace=default"
    );
}

#[test]
fn bad_continue_as_new_durations_fail_the_task() {
    let (cause, message) = rejected(continue_as_new_with(|a| {
        a.backoff_start_interval = Some(NEGATIVE)
    }));
    assert_eq!(cause, WorkflowTaskFailedCause::BadContinueAsNewAttributes);
    assert_eq!(
        message,
        "Invalid BackoffStartInterval on ContinueAsNewWorkflowExecutionCommand: negative duration. WorkflowType=w TaskQueue=x"
    );
    assert_eq!(
        rejected(continue_as_new_with(
            |a| a.workflow_run_timeout = Some(NEGATIVE)
        ))
        .1,
        "Invalid WorkflowRunTimeout on ContinueAsNewWorkflowExecutionCommand: negative duration. WorkflowType=w TaskQueue=x"
    );
    assert_eq!(
        rejected(continue_as_new_with(
            |a| a.workflow_task_timeout = Some(MISMATCHED)
        ))
        .1,
        "Invalid WorkflowTaskTimeout on ContinueAsNewWorkflowExecutionCommand: duration has seconds and nanos with different signs. WorkflowType=w TaskQueue=x"
    );
}

#[test]
fn a_huge_continue_as_new_backoff_is_capped() {
    let mut d = Driver::start();
    d.poll_wft();
    let outcome = d.complete_wft(vec![continue_as_new_with(|a| {
        a.backoff_start_interval = Some(HUGE);
        a.workflow_run_timeout = Some(HUGE);
    })]);
    assert!(outcome.rejected.is_none());
    let next = d.new_run.take().expect("a next run");
    let started = next.started_attributes();
    assert_eq!(
        duration_ms(started.first_workflow_task_backoff.as_ref()),
        MAX_MS
    );
    assert_eq!(duration_ms(started.workflow_run_timeout.as_ref()), MAX_MS);
}

#[test]
fn a_huge_sticky_schedule_to_start_timeout_is_capped() {
    let mut d = Driver::start();
    d.poll_wft();
    let mut request: RespondWorkflowTaskCompletedRequest = sticky_completion(vec![]);
    request
        .sticky_attributes
        .as_mut()
        .unwrap()
        .schedule_to_start_timeout = Some(HUGE);
    d.complete_wft_with(request);
    assert_eq!(d.wf.state.sticky_schedule_to_start_ms, MAX_MS);
    d.signal("s");
    let timeout = d.task(crate::state::TaskKind::WorkflowTaskTimeout);
    assert_eq!(timeout.fire_time_ms, T0 + MAX_MS);
}

/// A run started with huge timeouts (the frontend caps them; a child or a retry passes them
/// through the engine) does not overflow its deadlines.
#[test]
fn a_start_with_huge_timeouts_does_not_overflow() {
    let d = Driver::start_with(|p| {
        p.attributes.workflow_execution_timeout = Some(HUGE);
        p.attributes.workflow_run_timeout = Some(HUGE);
        p.attributes.first_workflow_task_backoff = Some(HUGE);
    });
    assert_eq!(d.wf.state.execution_time_ms, i64::MAX);
}
