//! Workflow-task scenarios: the plain flow, buffering, UNHANDLED_COMMAND, failures with
//! transient attempts, timeouts and sticky queues (reference §2.3–2.4).

use temporalio_protos::temporal::api::enums::v1::{
    TaskQueueKind, TimeoutType, WorkflowExecutionStatus, WorkflowTaskFailedCause,
};

use super::driver::*;
use crate::TaskKind;
use temporalio_protos::temporal::api::history::v1::history_event::Attributes;

/// Reference §2.3, "plain flow": one activity, one timer, 16 events.
#[test]
fn plain_flow_activity_then_timer() {
    let mut d = Driver::start();
    assert_eq!(
        d.types(),
        vec![E::WorkflowExecutionStarted, E::WorkflowTaskScheduled]
    );
    let dispatch = d.task(TaskKind::DispatchWorkflowTask);
    assert_eq!(
        (
            dispatch.scheduled_event_id,
            dispatch.attempt,
            dispatch.task_queue.as_str(),
            dispatch.sticky
        ),
        (2, 1, TASK_QUEUE, false)
    );
    assert_eq!(dispatch.fire_time_ms, 0, "dispatch is a transfer task");

    let start = d.poll_wft();
    assert_eq!(
        (
            start.scheduled_event_id,
            start.started_event_id,
            start.attempt
        ),
        (2, 3, 1)
    );
    assert_eq!(start.previous_started_event_id, 0);
    assert!(start.transient_events.is_empty());
    let timeout = d.task(TaskKind::WorkflowTaskTimeout);
    assert_eq!(
        timeout.fire_time_ms,
        T0 + 10_000,
        "default workflow-task timeout is 10 s"
    );
    assert_eq!(timeout.timeout_type, TimeoutType::StartToClose as i32);

    d.advance(100);
    d.complete_wft(vec![schedule_activity("a")]);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskCompleted, E::ActivityTaskScheduled]
    );
    assert_eq!(d.last_task_kinds(), vec![TaskKind::DispatchActivityTask]);
    let scheduled = attrs!(d.event(5), ActivityTaskScheduledEventAttributes);
    assert_eq!(scheduled.workflow_task_completed_event_id, 4);
    let policy = scheduled
        .retry_policy
        .as_ref()
        .expect("a retry policy is always set");
    assert_eq!(
        crate::time::duration_ms(policy.initial_interval.as_ref()),
        1_000
    );
    assert_eq!(
        crate::time::duration_ms(policy.maximum_interval.as_ref()),
        100_000
    );
    assert_eq!(policy.backoff_coefficient, 2.0);

    d.advance(100);
    d.start_activity(5);
    assert!(
        d.last_events.is_empty(),
        "RecordActivityTaskStarted writes no event"
    );
    assert_eq!(
        d.activity_timeout(5, TimeoutType::StartToClose)
            .fire_time_ms,
        d.now_ms + 10_000
    );
    d.advance(1_000);
    d.complete_activity(5);
    assert_eq!(
        d.last_types(),
        vec![
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled
        ]
    );
    let completed = attrs!(d.event(7), ActivityTaskCompletedEventAttributes);
    assert_eq!(
        (completed.scheduled_event_id, completed.started_event_id),
        (5, 6)
    );
    let started = attrs!(d.event(6), ActivityTaskStartedEventAttributes);
    assert_eq!((started.scheduled_event_id, started.attempt), (5, 1));
    assert_eq!(
        crate::time::timestamp_ms(d.event(6).event_time.as_ref().unwrap()),
        T0 + 200,
        "ActivityTaskStarted carries the recorded start time"
    );

    let start = d.poll_wft();
    assert_eq!(
        (start.started_event_id, start.previous_started_event_id),
        (9, 3)
    );
    d.complete_wft(vec![start_timer("t", 30_000)]);
    let timer = d.task(TaskKind::UserTimer);
    assert_eq!(
        (timer.timer_id.as_str(), timer.fire_time_ms),
        ("t", d.now_ms + 30_000)
    );
    d.fire(&timer);
    assert_eq!(
        d.last_types(),
        vec![E::TimerFired, E::WorkflowTaskScheduled]
    );
    assert_eq!(
        attrs!(d.event(12), TimerFiredEventAttributes).started_event_id,
        11
    );

    let start = d.poll_wft();
    assert_eq!(start.previous_started_event_id, 9);
    d.complete_wft(vec![complete_workflow()]);
    assert_eq!(
        d.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::ActivityTaskScheduled,
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::TimerStarted,
            E::TimerFired,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionCompleted,
        ]
    );
    assert_eq!(
        attrs!(d.event(16), WorkflowExecutionCompletedEventAttributes)
            .workflow_task_completed_event_id,
        15
    );
    assert_eq!(d.wf.state.status, WorkflowExecutionStatus::Completed as i32);
    assert_eq!(d.wf.state.close_event_id, 16);
    assert!(!d.wf.is_open() && d.wf.state.workflow_task.is_none());
}

/// Rule 1/2: a signal arriving while a task is started waits, then follows the commands'
/// events, and forces a new task.
#[test]
fn signal_during_started_task_is_buffered_behind_command_events() {
    let mut d = Driver::start();
    d.poll_wft();
    d.signal("s");
    assert!(d.last_events.is_empty());
    assert_eq!(d.buffered_types(), vec![E::WorkflowExecutionSignaled]);
    assert!(
        d.last_tasks.is_empty(),
        "no second workflow task while one is in flight"
    );

    d.complete_wft(vec![start_timer("t", 1_000)]);
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskCompleted,
            E::TimerStarted,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    assert!(d.wf.state.buffered_events.is_empty());
}

/// Rule 4: an event arriving while the task is only scheduled is not buffered and needs no
/// second task; it lands between Scheduled and Started.
#[test]
fn signal_before_start_lands_between_scheduled_and_started() {
    let mut d = Driver::start();
    d.signal("s");
    assert_eq!(d.last_types(), vec![E::WorkflowExecutionSignaled]);
    d.poll_wft();
    assert_eq!(
        d.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskStarted,
        ]
    );
}

/// Rule 2: buffered events veto a closing command: WorkflowTaskFailed(UNHANDLED_COMMAND),
/// then the buffered signal, then a new (normal) task.
#[test]
fn buffered_signal_vetoes_complete_with_unhandled_command() {
    let mut d = Driver::start();
    d.poll_wft();
    d.signal("s");
    let outcome = d.complete_wft(vec![complete_workflow()]);
    let rejected = outcome.rejected.expect("the completion is rejected");
    assert_eq!(rejected.cause, WorkflowTaskFailedCause::UnhandledCommand);
    assert_eq!(
        d.types_from(4),
        vec![
            E::WorkflowTaskFailed,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    let failed = attrs!(d.event(4), WorkflowTaskFailedEventAttributes);
    assert_eq!(
        failed.cause,
        WorkflowTaskFailedCause::UnhandledCommand as i32
    );
    assert_eq!((failed.scheduled_event_id, failed.started_event_id), (2, 3));
    assert_eq!(
        attrs!(d.event(6), WorkflowTaskScheduledEventAttributes).attempt,
        1,
        "flushed events make the retry a normal task"
    );
    assert!(d.wf.is_open());

    d.poll_wft();
    d.complete_wft(vec![complete_workflow()]);
    assert_eq!(
        d.types_from(7),
        vec![
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionCompleted,
        ]
    );
}

/// Reference §2.3: failure → WorkflowTaskFailed; attempts ≥ 2 are transient (returned to the
/// poller, not stored); further failures write nothing; success stores Scheduled (with the
/// final attempt), Started and Completed.
#[test]
fn failures_make_transient_attempts() {
    let mut d = Driver::start();
    d.poll_wft();
    d.fail_wft();
    assert_eq!(d.last_types(), vec![E::WorkflowTaskFailed]);
    let failed = attrs!(d.event(4), WorkflowTaskFailedEventAttributes);
    assert_eq!(
        failed.cause,
        WorkflowTaskFailedCause::WorkflowWorkerUnhandledFailure as i32
    );
    let dispatch = d.task(TaskKind::DispatchWorkflowTask);
    assert_eq!((dispatch.scheduled_event_id, dispatch.attempt), (5, 2));
    let pending = d.wf.state.workflow_task.clone().unwrap();
    assert!(pending.transient);

    let start = d.poll_wft();
    assert!(d.last_events.is_empty(), "transient events are not stored");
    assert_eq!(
        (
            start.scheduled_event_id,
            start.started_event_id,
            start.attempt
        ),
        (5, 6, 2)
    );
    assert_eq!(start.next_event_id, 5);
    assert_eq!(start.previous_started_event_id, 0);
    assert_eq!(
        types_of(&start.transient_events),
        vec![E::WorkflowTaskScheduled, E::WorkflowTaskStarted]
    );
    assert_eq!(
        start
            .transient_events
            .iter()
            .map(|e| e.event_id)
            .collect::<Vec<_>>(),
        vec![5, 6]
    );
    assert_eq!(
        attrs!(
            start.transient_events[0],
            WorkflowTaskScheduledEventAttributes
        )
        .attempt,
        2
    );
    assert_eq!(
        attrs!(
            start.transient_events[1],
            WorkflowTaskStartedEventAttributes
        )
        .scheduled_event_id,
        5
    );

    d.fail_wft();
    assert!(
        d.last_events.is_empty(),
        "a transient failure writes nothing"
    );
    let start = d.poll_wft();
    assert_eq!(
        (
            start.scheduled_event_id,
            start.started_event_id,
            start.attempt
        ),
        (5, 6, 3)
    );
    assert_eq!(start.transient_events.len(), 2);

    d.complete_wft(vec![complete_workflow()]);
    assert_eq!(
        d.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionCompleted,
        ]
    );
    assert_eq!(
        attrs!(d.event(5), WorkflowTaskScheduledEventAttributes).attempt,
        3
    );
    let completed = attrs!(d.event(7), WorkflowTaskCompletedEventAttributes);
    assert_eq!(
        (completed.scheduled_event_id, completed.started_event_id),
        (5, 6)
    );
}

/// A transient task that is completed without closing resets the attempt counter.
#[test]
fn completion_resets_the_attempt() {
    let mut d = Driver::start();
    d.poll_wft();
    d.fail_wft();
    d.poll_wft();
    d.complete_wft(vec![start_timer("t", 1_000)]);
    assert_eq!(d.wf.state.workflow_task_attempt, 1);
    d.fire(&d.task(TaskKind::UserTimer));
    assert_eq!(
        d.last_types(),
        vec![E::TimerFired, E::WorkflowTaskScheduled]
    );
    assert_eq!(
        attrs!(
            d.history.last().unwrap(),
            WorkflowTaskScheduledEventAttributes
        )
        .attempt,
        1
    );
}

/// An event stored between the failure and the next start makes the retry a normal task
/// (Temporal's AddWorkflowTaskStartedEvent: Scheduled is written, attempt back to 1).
#[test]
fn signal_after_failure_makes_retry_non_transient() {
    let mut d = Driver::start();
    d.poll_wft();
    d.fail_wft();
    d.signal("s");
    assert_eq!(d.last_types(), vec![E::WorkflowExecutionSignaled]);
    assert_eq!(d.event(5).event_type, E::WorkflowExecutionSignaled as i32);

    let start = d.poll_wft();
    assert!(start.transient_events.is_empty());
    assert_eq!(
        (
            start.scheduled_event_id,
            start.started_event_id,
            start.attempt
        ),
        (6, 7, 1)
    );
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskScheduled, E::WorkflowTaskStarted]
    );
    assert_eq!(
        attrs!(d.event(6), WorkflowTaskScheduledEventAttributes).attempt,
        1
    );

    // A failure of this normal task is recorded and the next attempt is transient again.
    d.fail_wft();
    assert_eq!(d.last_types(), vec![E::WorkflowTaskFailed]);
    let start = d.poll_wft();
    assert_eq!((start.attempt, start.transient_events.len()), (2, 2));
}

/// A signal buffered during a transient attempt is flushed when that attempt fails, and the
/// next task is a normal one.
#[test]
fn signal_during_transient_attempt_ends_transience() {
    let mut d = Driver::start();
    d.poll_wft();
    d.fail_wft();
    d.poll_wft();
    d.signal("s");
    assert_eq!(d.buffered_types(), vec![E::WorkflowExecutionSignaled]);
    d.fail_wft();
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowExecutionSignaled, E::WorkflowTaskScheduled]
    );
    assert_eq!(
        attrs!(d.event(6), WorkflowTaskScheduledEventAttributes).attempt,
        1
    );
}

/// Start-to-close timeout → WorkflowTaskTimedOut and a transient retry; the stale timer of a
/// later-completed attempt does nothing.
#[test]
fn start_to_close_timeout() {
    let mut d = Driver::start();
    d.poll_wft();
    let timer = d.task(TaskKind::WorkflowTaskTimeout);
    d.fire(&timer);
    assert_eq!(d.last_types(), vec![E::WorkflowTaskTimedOut]);
    let timed_out = attrs!(d.event(4), WorkflowTaskTimedOutEventAttributes);
    assert_eq!(timed_out.timeout_type, TimeoutType::StartToClose as i32);
    assert_eq!(
        (timed_out.scheduled_event_id, timed_out.started_event_id),
        (2, 3)
    );
    let next = d.wf.state.workflow_task.clone().unwrap();
    assert!(next.transient && next.attempt == 2);

    // The same timer again, and the timer of an attempt that completed, change nothing.
    d.unchanged(|d| d.try_fire(&timer)).unwrap();
    d.poll_wft();
    let second = d.task(TaskKind::WorkflowTaskTimeout);
    assert_eq!(second.attempt, 2);
    d.complete_wft(vec![start_timer("t", 60_000)]);
    d.unchanged(|d| d.try_fire(&second)).unwrap();

    // A transient attempt that times out writes nothing.
    d.signal("s");
    d.poll_wft();
    d.fire(&d.task(TaskKind::WorkflowTaskTimeout));
    assert_eq!(d.last_types(), vec![E::WorkflowTaskTimedOut]);
    d.poll_wft();
    d.fire(&d.task(TaskKind::WorkflowTaskTimeout));
    assert!(d.last_events.is_empty());
    assert_eq!(d.wf.state.workflow_task.as_ref().unwrap().attempt, 3);
}

fn sticky_run() -> Driver {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft_with(sticky_completion(vec![start_timer("t", 1_000)]));
    assert_eq!(d.wf.state.sticky_task_queue, STICKY_QUEUE);
    assert_eq!(d.wf.state.sticky_schedule_to_start_ms, 5_000);
    d.fire(&d.task(TaskKind::UserTimer));
    d
}

/// A sticky run dispatches to its sticky queue with a schedule-to-start timer; when that fires
/// → WorkflowTaskTimedOut(SCHEDULE_TO_START), stickiness cleared, attempt unchanged.
#[test]
fn sticky_schedule_to_start_timeout() {
    let mut d = sticky_run();
    assert_eq!(
        d.last_types(),
        vec![E::TimerFired, E::WorkflowTaskScheduled]
    );
    let scheduled = attrs!(d.event(7), WorkflowTaskScheduledEventAttributes);
    let queue = scheduled.task_queue.as_ref().unwrap();
    assert_eq!(
        (queue.name.as_str(), queue.kind, queue.normal_name.as_str()),
        (STICKY_QUEUE, TaskQueueKind::Sticky as i32, TASK_QUEUE)
    );
    let dispatch = d.task(TaskKind::DispatchWorkflowTask);
    assert!(dispatch.sticky);
    assert_eq!(
        (
            dispatch.task_queue.as_str(),
            dispatch.normal_task_queue.as_str()
        ),
        (STICKY_QUEUE, TASK_QUEUE)
    );
    assert_eq!(dispatch.schedule_to_start_ms, 5_000);
    let timer = d.task(TaskKind::WorkflowTaskTimeout);
    assert_eq!(timer.timeout_type, TimeoutType::ScheduleToStart as i32);
    assert_eq!(timer.fire_time_ms, d.now_ms + 5_000);

    d.fire(&timer);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskTimedOut, E::WorkflowTaskScheduled]
    );
    let timed_out = attrs!(d.event(8), WorkflowTaskTimedOutEventAttributes);
    assert_eq!(timed_out.timeout_type, TimeoutType::ScheduleToStart as i32);
    assert_eq!(
        (timed_out.scheduled_event_id, timed_out.started_event_id),
        (7, 0)
    );
    let rescheduled = attrs!(d.event(9), WorkflowTaskScheduledEventAttributes);
    assert_eq!(rescheduled.attempt, 1);
    assert_eq!(rescheduled.task_queue.as_ref().unwrap().name, TASK_QUEUE);
    assert!(d.wf.state.sticky_task_queue.is_empty());
    assert!(!d.task(TaskKind::DispatchWorkflowTask).sticky);
}

/// A sticky schedule-to-start timer that fires after the sticky worker started the task does
/// nothing.
#[test]
fn sticky_timer_after_start_is_ignored() {
    let mut d = sticky_run();
    let timer = d.task(TaskKind::WorkflowTaskTimeout);
    d.poll_wft_from(STICKY_QUEUE);
    d.unchanged(|d| d.try_fire(&timer)).unwrap();
}

/// Reference §2.3: a task failing on a sticky queue clears stickiness and is retried once on
/// the normal queue without incrementing the attempt (a normal task, not a transient one).
#[test]
fn sticky_failure_retries_on_normal_queue_without_new_attempt() {
    let mut d = sticky_run();
    d.poll_wft_from(STICKY_QUEUE);
    assert_eq!(d.wf.state.sticky_task_queue, STICKY_QUEUE);
    d.fail_wft();
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskFailed, E::WorkflowTaskScheduled]
    );
    let scheduled = attrs!(
        d.history.last().unwrap(),
        WorkflowTaskScheduledEventAttributes
    );
    assert_eq!(scheduled.attempt, 1);
    assert_eq!(scheduled.task_queue.as_ref().unwrap().name, TASK_QUEUE);
    assert!(d.wf.state.sticky_task_queue.is_empty());

    // The same for a start-to-close timeout on the sticky queue.
    let mut d = sticky_run();
    d.poll_wft_from(STICKY_QUEUE);
    d.fire(&d.task_where(TaskKind::WorkflowTaskTimeout, |t| {
        t.timeout_type == TimeoutType::StartToClose as i32
    }));
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskTimedOut, E::WorkflowTaskScheduled]
    );
    assert_eq!(
        attrs!(
            d.history.last().unwrap(),
            WorkflowTaskScheduledEventAttributes
        )
        .attempt,
        1
    );
}

/// A normal-queue poller taking a sticky task ends stickiness; its failure then counts.
#[test]
fn normal_poller_clears_stickiness() {
    let mut d = sticky_run();
    d.poll_wft_from(TASK_QUEUE);
    assert!(d.wf.state.sticky_task_queue.is_empty());
    d.fail_wft();
    assert_eq!(d.last_types(), vec![E::WorkflowTaskFailed]);
    assert_eq!(d.wf.state.workflow_task.as_ref().unwrap().attempt, 2);
}

/// A completion without sticky attributes ends stickiness.
#[test]
fn completion_without_sticky_attributes_clears_stickiness() {
    let mut d = sticky_run();
    d.poll_wft_from(STICKY_QUEUE);
    d.complete_wft(vec![start_timer("u", 1_000)]);
    assert!(d.wf.state.sticky_task_queue.is_empty());
    assert_eq!(d.wf.state.sticky_schedule_to_start_ms, 0);
}

/// return_new_workflow_task with force_create_new_workflow_task: the next task is started in
/// the same request and not dispatched to matching.
#[test]
fn eager_next_workflow_task() {
    let mut d = Driver::start();
    d.poll_wft();
    let mut request = completion(vec![]);
    request.force_create_new_workflow_task = true;
    request.return_new_workflow_task = true;
    let outcome = d.complete_wft_with(request);
    let next = outcome
        .new_workflow_task
        .expect("the next task is returned");
    assert_eq!(
        (
            next.scheduled_event_id,
            next.started_event_id,
            next.previous_started_event_id
        ),
        (5, 6, 3)
    );
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskCompleted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted
        ]
    );
    assert_eq!(d.last_task_kinds(), vec![TaskKind::WorkflowTaskTimeout]);
    // Temporal's request id for such a task, and the completing worker's build id.
    let Some(Attributes::WorkflowTaskStartedEventAttributes(started)) = &d.event(6).attributes
    else {
        panic!("event 6 is not WorkflowTaskStarted");
    };
    assert_eq!(
        started.request_id,
        "request-from-RespondWorkflowTaskCompleted"
    );
    assert_eq!(started.worker_version, None, "the completion sent no stamp");
}

/// The build id a poller reports is stamped on the started events of its tasks.
#[test]
fn started_events_carry_the_workers_build_id() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![schedule_activity("a")]);
    d.start_activity(5);
    d.complete_activity(5);
    let stamp = |id: i64| match &d.event(id).attributes {
        Some(Attributes::WorkflowTaskStartedEventAttributes(a)) => a.worker_version.clone(),
        Some(Attributes::ActivityTaskStartedEventAttributes(a)) => a.worker_version.clone(),
        other => panic!("event {id}: {other:?}"),
    };
    for id in [3, 6] {
        assert_eq!(
            stamp(id).map(|s| (s.build_id, s.use_versioning)),
            Some((WORKER_BUILD_ID.to_string(), false)),
            "event {id}"
        );
    }
}

/// A completion with no commands and nothing new closes the task and schedules nothing.
#[test]
fn empty_completion_schedules_nothing() {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![]);
    assert_eq!(d.last_types(), vec![E::WorkflowTaskCompleted]);
    assert!(d.last_tasks.is_empty());
    assert!(d.wf.state.workflow_task.is_none());
}

/// A start-to-close timeout with buffered events: the buffer is flushed after the timeout and
/// the retry is a normal task (attempt 1), not a transient one.
#[test]
fn timeout_with_buffered_events_schedules_a_normal_task() {
    let mut d = Driver::start();
    d.poll_wft();
    d.signal("s");
    d.fire(&d.task(TaskKind::WorkflowTaskTimeout));
    assert_eq!(
        d.last_types(),
        vec![
            E::WorkflowTaskTimedOut,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    assert_eq!(
        attrs!(d.event(6), WorkflowTaskScheduledEventAttributes).attempt,
        1
    );
}

/// A transient attempt vetoed by UNHANDLED_COMMAND writes no failure of its own; the buffered
/// signal is flushed and a normal task follows.
#[test]
fn unhandled_command_on_a_transient_attempt() {
    let mut d = Driver::start();
    d.poll_wft();
    d.fail_wft();
    d.poll_wft();
    d.signal("s");
    let outcome = d.complete_wft(vec![complete_workflow()]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::UnhandledCommand
    );
    assert_eq!(
        d.types_from(4),
        vec![
            E::WorkflowTaskFailed,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    assert!(d.wf.is_open());
}

/// More than 100 events buffered behind a running task force-fail it (FORCE_CLOSE_COMMAND); the
/// events go to a new task and the old task's completion is refused.
#[test]
fn buffer_overflow_force_fails_the_running_task() {
    let mut d = Driver::start();
    d.poll_wft();
    let (scheduled, attempt) = d.started_wft();
    for i in 0..100 {
        d.signal(&format!("s{i}"));
    }
    assert_eq!(d.wf.state.buffered_events.len(), 100);
    d.signal("one-too-many");
    assert!(d.wf.state.buffered_events.is_empty());
    let types = d.last_types();
    assert_eq!(types.first(), Some(&E::WorkflowTaskFailed));
    assert_eq!(types.last(), Some(&E::WorkflowTaskScheduled));
    assert_eq!(types.len(), 103);
    let failed = attrs!(d.event(4), WorkflowTaskFailedEventAttributes);
    assert_eq!(
        failed.cause,
        WorkflowTaskFailedCause::ForceCloseCommand as i32
    );
    let stale = d.unchanged(|d| d.try_complete_wft(scheduled, attempt, completion(vec![])));
    assert!(matches!(stale, Err(crate::Error::NotFound(_))));
}

/// Eager workflow start: the first task starts in the start itself, is not dispatched, and the
/// started event says so; a delayed first task cannot start eagerly.
#[test]
fn eager_start_starts_the_first_task() {
    let mut wf = crate::Workflow::start(start_params(), &crate::Env::new(T0, "")).unwrap();
    let start = wf
        .start_first_workflow_task_eagerly("req-1", "worker-1", &crate::Env::new(T0, ""))
        .expect("the first task starts");
    assert_eq!((start.scheduled_event_id, start.started_event_id), (2, 3));
    let changes = wf.take_changes();
    assert!(
        changes
            .tasks
            .iter()
            .all(|t| t.task_kind() != TaskKind::DispatchWorkflowTask)
    );
    let started = attrs!(changes.events[0], WorkflowExecutionStartedEventAttributes);
    assert!(started.eager_execution_accepted);

    let mut delayed = start_params();
    delayed.attributes.first_workflow_task_backoff = Some(crate::time::duration(5_000));
    let mut wf = crate::Workflow::start(delayed, &crate::Env::new(T0, "")).unwrap();
    assert!(
        wf.start_first_workflow_task_eagerly("req-1", "worker-1", &crate::Env::new(T0, ""))
            .is_none()
    );
}
