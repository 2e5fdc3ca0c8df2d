//! Run lifecycle scenarios: signals, cancellation, termination, continue-as-new, timeouts,
//! signal-with-start and the first-task backoff.

use temporalio_protos::temporal::api::enums::v1::{
    ContinueAsNewInitiator, RetryState, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};

use super::driver::*;
use crate::time::{duration, duration_ms};
use crate::{Error, Signal, TaskKind};

/// Reference §2.3, cancellation: CancelRequested + a task; CancelWorkflowExecution → Canceled.
#[test]
fn cancel_request_then_cancel_command() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![start_timer("t", 60_000)]);
    d.request_cancel().unwrap();
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowExecutionCancelRequested,
            E::WorkflowTaskScheduled
        ]
    );
    let requested = attrs!(d.event(6), WorkflowExecutionCancelRequestedEventAttributes);
    assert_eq!(requested.cause, "cancel it");
    d.unchanged(|d| d.request_cancel()).unwrap();

    d.poll_wft();
    d.complete_wft(vec![cancel_workflow()]);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskCompleted, E::WorkflowExecutionCanceled]
    );
    assert_eq!(
        attrs!(d.event(10), WorkflowExecutionCanceledEventAttributes)
            .workflow_task_completed_event_id,
        9
    );
    assert_eq!(d.wf.state.status, WorkflowExecutionStatus::Canceled as i32);
    assert!(d.wf.state.timers.is_empty());
}

/// A cancel request during a started task is buffered like a signal.
#[test]
fn cancel_request_during_started_task_is_buffered() {
    let mut d = Driver::start();
    d.poll_wft();
    d.request_cancel().unwrap();
    assert_eq!(
        d.buffered_types(),
        vec![E::WorkflowExecutionCancelRequested]
    );
    let outcome = d.complete_wft(vec![cancel_workflow()]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::UnhandledCommand
    );
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskFailed,
            E::WorkflowExecutionCancelRequested,
            E::WorkflowTaskScheduled,
        ]
    );
}

/// Terminate with a started task and a buffered signal: the task fails (FORCE_CLOSE_COMMAND),
/// the buffer is flushed, then Terminated; afterwards the run refuses everything.
#[test]
fn terminate_flushes_the_buffer_first() {
    let mut d = Driver::start();
    d.poll_wft();
    d.signal("s");
    d.terminate().unwrap();
    assert_eq!(
        d.types_from(4),
        vec![
            E::WorkflowTaskFailed,
            E::WorkflowExecutionSignaled,
            E::WorkflowExecutionTerminated,
        ]
    );
    let failed = attrs!(d.event(4), WorkflowTaskFailedEventAttributes);
    assert_eq!(
        failed.cause,
        WorkflowTaskFailedCause::ForceCloseCommand as i32
    );
    assert_eq!((failed.scheduled_event_id, failed.started_event_id), (2, 3));
    let terminated = attrs!(d.event(6), WorkflowExecutionTerminatedEventAttributes);
    assert_eq!(
        (terminated.reason.as_str(), terminated.identity.as_str()),
        ("terminate it", "client-1")
    );
    assert_eq!(
        d.wf.state.status,
        WorkflowExecutionStatus::Terminated as i32
    );
    assert_eq!(d.wf.state.close_event_id, 6);
    assert!(d.wf.state.workflow_task.is_none() && d.wf.state.buffered_events.is_empty());
    assert!(d.last_tasks.is_empty());

    assert!(matches!(
        d.unchanged(|d| d.try_complete_wft(2, 1, completion(vec![complete_workflow()]))),
        Err(Error::NotFound(_))
    ));
    assert_eq!(
        d.unchanged(|d| d.terminate()),
        Err(Error::WorkflowCompleted)
    );
    assert_eq!(
        d.unchanged(|d| d.request_cancel()),
        Err(Error::WorkflowCompleted)
    );
    assert_eq!(
        d.unchanged(|d| d.try_signal(Signal::default())),
        Err(Error::WorkflowCompleted)
    );
}

/// Terminating an idle run, or one whose started task is transient, writes only Terminated.
#[test]
fn terminate_without_a_stored_started_task() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![start_timer("t", 1_000)]);
    d.terminate().unwrap();
    assert_eq!(d.last_types(), vec![E::WorkflowExecutionTerminated]);
    let timer = d.task(TaskKind::UserTimer);
    d.unchanged(|d| d.try_fire(&timer)).unwrap();

    let mut d = Driver::start();
    d.poll_wft();
    d.fail_wft();
    d.poll_wft();
    d.terminate().unwrap();
    assert_eq!(d.last_types(), vec![E::WorkflowExecutionTerminated]);
    assert_eq!(d.wf.state.close_event_id, 5);
}

/// Continue-as-new closes the run with ContinuedAsNew and hands back the next run, whose
/// first events are Started (continued from this run, initiator WORKFLOW) and its first task.
#[test]
fn continue_as_new_creates_the_next_run() {
    let mut d = Driver::start_with(|p| {
        p.attributes.workflow_run_timeout = Some(duration(60_000));
    });
    d.poll_wft();
    // A run older than a second continues without delay (see the next test).
    d.advance(1_500);
    d.complete_wft(vec![continue_as_new()]);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskCompleted, E::WorkflowExecutionContinuedAsNew]
    );
    let continued = attrs!(d.event(5), WorkflowExecutionContinuedAsNewEventAttributes);
    assert_eq!(continued.new_execution_run_id, "run-2");
    assert_eq!(continued.workflow_task_completed_event_id, 4);
    // The event keeps the command's initiator (unset), as Temporal's does.
    assert_eq!(continued.initiator, 0);
    assert_eq!(continued.workflow_type.as_ref().unwrap().name, "Wf");
    assert_eq!(continued.task_queue.as_ref().unwrap().name, TASK_QUEUE);
    assert_eq!(
        d.wf.state.status,
        WorkflowExecutionStatus::ContinuedAsNew as i32
    );
    assert_eq!(d.wf.state.new_execution_run_id, "run-2");

    let next = d.new_run.take().expect("the next run");
    let mut n = Driver::from_workflow(next, d.now_ms);
    assert_eq!(n.wf.state.run_id, "run-2");
    assert_eq!(
        n.types(),
        vec![E::WorkflowExecutionStarted, E::WorkflowTaskScheduled]
    );
    let started = attrs!(n.event(1), WorkflowExecutionStartedEventAttributes);
    assert_eq!(started.continued_execution_run_id, "run-1");
    assert_eq!(started.initiator, ContinueAsNewInitiator::Workflow as i32);
    assert_eq!(started.first_execution_run_id, "run-1");
    assert_eq!(started.input, Some(payloads("next")));
    assert_eq!(started.attempt, 1);
    assert_eq!(duration_ms(started.workflow_run_timeout.as_ref()), 60_000);
    assert_eq!(
        n.last_task_kinds(),
        vec![TaskKind::DispatchWorkflowTask, TaskKind::WorkflowRunTimeout]
    );
    n.poll_wft();
    n.complete_wft(vec![complete_workflow()]);
    assert_eq!(n.wf.state.status, WorkflowExecutionStatus::Completed as i32);
}

/// A run that continues as new within a second of its start: the next run's first task waits
/// out the rest of the second (Temporal's ContinueAsNewMinBackoff), and the next run carries
/// this run's reset points.
#[test]
fn quick_continue_as_new_waits_out_the_minimal_interval() {
    let mut d = Driver::start();
    d.poll_wft();
    d.advance(300);
    d.complete_wft(vec![continue_as_new()]);
    let mut n = Driver::from_workflow(d.new_run.take().unwrap(), d.now_ms);
    assert_eq!(n.types(), vec![E::WorkflowExecutionStarted]);
    let started = attrs!(n.event(1), WorkflowExecutionStartedEventAttributes);
    assert_eq!(
        duration_ms(started.first_workflow_task_backoff.as_ref()),
        700
    );
    assert_eq!(
        started.identity, "",
        "a continued run has no starter identity"
    );
    let points = started.prev_auto_reset_points.as_ref().unwrap();
    assert_eq!(points.points.len(), 1);
    assert_eq!(points.points[0].run_id, "run-1");
    assert_eq!(points.points[0].first_workflow_task_completed_id, 4);
    assert!(points.points[0].expire_time.is_some());
    let backoff = n.task(TaskKind::WorkflowBackoff);
    assert_eq!(backoff.fire_time_ms, d.now_ms + 700);
    n.fire(&backoff);
    assert_eq!(n.last_types(), vec![E::WorkflowTaskScheduled]);
}

/// Continue-as-new is a closing command: vetoed while events are buffered.
#[test]
fn continue_as_new_is_vetoed_by_buffered_events() {
    let mut d = Driver::start();
    d.poll_wft();
    d.signal("s");
    let outcome = d.complete_wft(vec![continue_as_new()]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::UnhandledCommand
    );
    assert!(d.new_run.is_none());
    assert!(d.wf.is_open());
}

/// The run timeout: WorkflowExecutionTimedOut; a started task is failed first.
#[test]
fn run_timeout() {
    let mut d = Driver::start_with(|p| {
        p.attributes.workflow_run_timeout = Some(duration(60_000));
    });
    assert_eq!(
        duration_ms(
            attrs!(d.event(2), WorkflowTaskScheduledEventAttributes)
                .start_to_close_timeout
                .as_ref()
        ),
        10_000
    );
    let timer = d.task(TaskKind::WorkflowRunTimeout);
    assert_eq!(timer.fire_time_ms, T0 + 60_000);
    d.fire(&timer);
    assert_eq!(
        d.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowExecutionTimedOut,
        ]
    );
    let timed_out = attrs!(d.event(3), WorkflowExecutionTimedOutEventAttributes);
    // Checked against the reference server: a run without a retry policy reports that.
    assert_eq!(timed_out.retry_state, RetryState::RetryPolicyNotSet as i32);
    assert_eq!(d.wf.state.status, WorkflowExecutionStatus::TimedOut as i32);
    assert_eq!(
        d.unchanged(|d| d.try_fire(&timer)),
        Err(Error::WorkflowCompleted)
    );

    let mut d = Driver::start_with(|p| {
        p.attributes.workflow_run_timeout = Some(duration(60_000));
    });
    d.poll_wft();
    d.fire(&d.task(TaskKind::WorkflowRunTimeout));
    assert_eq!(
        d.types_from(4),
        vec![E::WorkflowTaskFailed, E::WorkflowExecutionTimedOut]
    );
}

/// The workflow-task timeout is capped by the run timeout; the execution timeout caps the
/// run timeout.
#[test]
fn timeouts_are_capped() {
    let d = Driver::start_with(|p| {
        p.attributes.workflow_run_timeout = Some(duration(60_000));
        p.attributes.workflow_execution_timeout = Some(duration(5_000));
    });
    let started = attrs!(d.event(1), WorkflowExecutionStartedEventAttributes);
    assert_eq!(duration_ms(started.workflow_run_timeout.as_ref()), 5_000);
    assert_eq!(duration_ms(started.workflow_task_timeout.as_ref()), 5_000);
    assert_eq!(
        d.task(TaskKind::WorkflowRunTimeout).fire_time_ms,
        T0 + 5_000
    );
    assert!(
        Driver::start_with(|_| {})
            .wf
            .state
            .started
            .as_ref()
            .unwrap()
            .workflow_run_timeout
            .is_none()
    );
}

/// FailWorkflowExecution → WorkflowExecutionFailed.
#[test]
fn fail_workflow_command() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![fail_workflow()]);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskCompleted, E::WorkflowExecutionFailed]
    );
    assert_eq!(d.wf.state.status, WorkflowExecutionStatus::Failed as i32);
}

/// Signal-with-start: Started, Signaled, WorkflowTaskScheduled.
#[test]
fn signal_with_start() {
    let d = Driver::start_with(|p| {
        p.signal = Some(Signal {
            name: "go".into(),
            ..Default::default()
        });
    });
    assert_eq!(
        d.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    assert_eq!(d.wf.state.signal_count, 1);
}

/// A first-task backoff delays the first task behind a WorkflowBackoff timer.
#[test]
fn first_workflow_task_backoff() {
    let mut d = Driver::start_with(|p| {
        p.attributes.first_workflow_task_backoff = Some(duration(30_000));
    });
    assert_eq!(d.types(), vec![E::WorkflowExecutionStarted]);
    let backoff = d.task(TaskKind::WorkflowBackoff);
    assert_eq!(backoff.fire_time_ms, T0 + 30_000);
    assert_eq!(d.wf.state.execution_time_ms, T0 + 30_000);
    d.fire(&backoff);
    assert_eq!(d.last_types(), vec![E::WorkflowTaskScheduled]);
}

/// Signals dedupe by request id; skip_generate_workflow_task stores the signal only.
#[test]
fn signal_dedupe_and_skip_generate() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![]);
    let signal = Signal {
        name: "s".into(),
        request_id: "sig-1".into(),
        skip_generate_workflow_task: true,
        ..Default::default()
    };
    d.try_signal(signal.clone()).unwrap();
    assert_eq!(d.last_types(), vec![E::WorkflowExecutionSignaled]);
    d.unchanged(|d| d.try_signal(signal)).unwrap();
    assert_eq!(d.wf.state.signal_count, 1);
    d.signal("t");
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowExecutionSignaled, E::WorkflowTaskScheduled]
    );
}

/// Invalid start parameters are refused, not panicked on.
#[test]
fn negative_run_timeout_is_refused() {
    let mut params = start_params();
    params.attributes.workflow_run_timeout = Some(duration(-1));
    let env = crate::Env::new(T0, "");
    assert!(matches!(
        crate::Workflow::start(params, &env),
        Err(Error::InvalidArgument(_))
    ));
}

/// A failing run under a retry policy closes with IN_PROGRESS and chains to the next attempt,
/// whose first workflow task waits for the backoff (checked against the reference server).
#[test]
fn failing_run_retries_under_its_retry_policy() {
    let mut d = Driver::start_with(|p| p.attributes.retry_policy = Some(retry_policy(500, 2)));
    d.poll_wft();
    d.complete_wft(vec![fail_workflow()]);
    let failed = attrs!(d.event(5), WorkflowExecutionFailedEventAttributes);
    assert_eq!(failed.retry_state, RetryState::InProgress as i32);
    assert_eq!(failed.new_execution_run_id, "run-2");
    assert_eq!(d.wf.state.status, WorkflowExecutionStatus::Failed as i32);

    let next = d.new_run.take().expect("the retry run");
    let mut n = Driver::from_workflow(next, d.now_ms);
    assert_eq!(n.types(), vec![E::WorkflowExecutionStarted]);
    let started = attrs!(n.event(1), WorkflowExecutionStartedEventAttributes);
    assert_eq!(started.attempt, 2);
    assert_eq!(started.initiator, ContinueAsNewInitiator::Retry as i32);
    assert_eq!(started.continued_execution_run_id, "run-1");
    assert_eq!(started.first_execution_run_id, "run-1");
    assert_eq!(started.original_execution_run_id, "run-2");
    assert_eq!(
        started.continued_failure.as_ref().unwrap().message,
        "workflow failed"
    );
    // The 500 ms backoff is raised so the runs start at least a second apart (Temporal's
    // ContinueAsNewMinBackoff: this run lived no time at all).
    assert_eq!(
        duration_ms(started.first_workflow_task_backoff.as_ref()),
        1_000
    );
    let backoff = n.task(TaskKind::WorkflowBackoff);
    assert_eq!(backoff.fire_time_ms, d.now_ms + 1_000);
    n.fire(&backoff);
    assert_eq!(n.last_types(), vec![E::WorkflowTaskScheduled]);

    // The second attempt is the last one: its failure is final.
    n.poll_wft();
    n.complete_wft(vec![fail_workflow()]);
    let failed = attrs!(n.event(5), WorkflowExecutionFailedEventAttributes);
    assert_eq!(
        failed.retry_state,
        RetryState::MaximumAttemptsReached as i32
    );
    assert!(failed.new_execution_run_id.is_empty());
    assert!(n.new_run.is_none());
}

/// Without a retry policy a failure is final and says so.
#[test]
fn failing_run_without_policy_is_final() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![fail_workflow()]);
    let failed = attrs!(d.event(5), WorkflowExecutionFailedEventAttributes);
    assert_eq!(failed.retry_state, RetryState::RetryPolicyNotSet as i32);
    assert!(d.new_run.is_none());
}

/// A run timeout under a retry policy retries too.
#[test]
fn timed_out_run_retries_under_its_retry_policy() {
    let mut d = Driver::start_with(|p| {
        p.attributes.retry_policy = Some(retry_policy(1_000, 3));
        p.attributes.workflow_run_timeout = Some(duration(60_000));
    });
    let timer = d.task(TaskKind::WorkflowRunTimeout);
    d.fire(&timer);
    let timed_out = attrs!(d.event(3), WorkflowExecutionTimedOutEventAttributes);
    assert_eq!(timed_out.retry_state, RetryState::InProgress as i32);
    assert_eq!(timed_out.new_execution_run_id, "run-2");
    let next = d.new_run.take().expect("the retry run");
    assert_eq!(next.started_attributes().attempt, 2);
}

/// A cron workflow: the first run waits for the first fire; completing chains the next run
/// (initiator CRON_SCHEDULE, the result carried over), as the reference server does.
#[test]
fn cron_runs_chain_on_completion() {
    let mut d = Driver::start_with(|p| p.attributes.cron_schedule = "@every 2s".into());
    let started = attrs!(d.event(1), WorkflowExecutionStartedEventAttributes);
    assert_eq!(
        started.initiator,
        ContinueAsNewInitiator::CronSchedule as i32
    );
    assert_eq!(
        duration_ms(started.first_workflow_task_backoff.as_ref()),
        2_000
    );
    assert_eq!(d.types(), vec![E::WorkflowExecutionStarted]);
    let backoff = d.task(TaskKind::WorkflowBackoff);
    d.now_ms = backoff.fire_time_ms;
    d.fire(&backoff);
    d.poll_wft();
    d.complete_wft(vec![complete_workflow()]);
    let completed = attrs!(d.event(5), WorkflowExecutionCompletedEventAttributes);
    assert_eq!(completed.new_execution_run_id, "run-2");
    assert_eq!(d.wf.state.status, WorkflowExecutionStatus::Completed as i32);
    let next = d.new_run.take().expect("the next cron run");
    let started = next.started_attributes();
    assert_eq!(
        started.initiator,
        ContinueAsNewInitiator::CronSchedule as i32
    );
    assert_eq!(started.continued_execution_run_id, "run-1");
    assert_eq!(started.last_completion_result, Some(payloads("done")));
    assert_eq!(started.cron_schedule, "@every 2s");
}

/// A schedule that does not parse is refused at start.
#[test]
fn bad_cron_schedule_is_invalid_argument() {
    let mut params = start_params();
    params.attributes.cron_schedule = "not a schedule".into();
    let result = crate::Workflow::start(params, &crate::Env::new(T0, ""));
    assert!(matches!(result, Err(Error::InvalidArgument(_))));
}

/// SignalExternal and RequestCancelExternal: the initiated events, a transfer task each, then
/// the answer from the target's shard resolves them (delivered, or not found).
#[test]
fn external_signal_and_cancel_resolve() {
    use temporalio_protos::temporal::api::{
        command::v1::{
            Command, RequestCancelExternalWorkflowExecutionCommandAttributes,
            SignalExternalWorkflowExecutionCommandAttributes, command::Attributes as Cmd,
        },
        common::v1::WorkflowExecution,
    };
    let mut d = Driver::start();
    d.poll_wft();
    let signal = Command {
        attributes: Some(Cmd::SignalExternalWorkflowExecutionCommandAttributes(
            SignalExternalWorkflowExecutionCommandAttributes {
                execution: Some(WorkflowExecution {
                    workflow_id: "other".into(),
                    run_id: String::new(),
                }),
                signal_name: "ping".into(),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let cancel = Command {
        attributes: Some(
            Cmd::RequestCancelExternalWorkflowExecutionCommandAttributes(
                RequestCancelExternalWorkflowExecutionCommandAttributes {
                    workflow_id: "gone".into(),
                    ..Default::default()
                },
            ),
        ),
        ..Default::default()
    };
    d.complete_wft(vec![signal, cancel]);
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskCompleted,
            E::SignalExternalWorkflowExecutionInitiated,
            E::RequestCancelExternalWorkflowExecutionInitiated,
        ]
    );
    assert_eq!(d.task(TaskKind::SignalExternal).scheduled_event_id, 5);
    assert_eq!(d.task(TaskKind::CancelExternal).scheduled_event_id, 6);

    let env = d.env();
    d.wf.signal_external_done(5, true, &env).unwrap();
    d.wf.cancel_external_done(6, false, &env).unwrap();
    // A repeated answer is ignored.
    d.wf.cancel_external_done(6, true, &env).unwrap();
    d.collect();
    assert_eq!(
        d.types_from(7),
        vec![
            E::ExternalWorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
            E::RequestCancelExternalWorkflowExecutionFailed,
        ]
    );
    let failed = attrs!(
        d.event(9),
        RequestCancelExternalWorkflowExecutionFailedEventAttributes
    );
    // Temporal leaves the command's task id off the failure (checked against the reference).
    assert_eq!(
        (
            failed.initiated_event_id,
            failed.workflow_task_completed_event_id
        ),
        (6, 0)
    );
    assert!(d.wf.state.pending_signals.is_empty() && d.wf.state.pending_cancels.is_empty());
}
