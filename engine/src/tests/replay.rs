//! Replay checks (STYLE.md 6): the mutable state a store writes is the state it reads back,
//! and a run reloaded from those bytes answers the same inputs with the same events and tasks.
//! (The driver also round-trips the state after every step of every scenario.)

use temporalio_protos::temporal::api::enums::v1::TimeoutType;

use super::driver::*;
use crate::TaskKind;

/// A run with a bit of everything pending: sticky queue, a started activity with heartbeat
/// details, an activity waiting to retry with its last failure, a timer, a started workflow
/// task and two buffered events.
fn busy_run() -> Driver {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft_with(sticky_completion(vec![
        schedule_activity_with("a", 10_000, |a| {
            a.heartbeat_timeout = Some(crate::time::duration(5_000));
        }),
        schedule_activity("b"),
        start_timer("t", 60_000),
    ]));
    d.start_activity(5);
    d.heartbeat(5, "half way");
    d.start_activity(6);
    d.fail_activity(6, app_failure("boom", "Err", false));
    d.signal("s1");
    d.poll_wft_from(STICKY_QUEUE);
    d.signal("s2");
    d.complete_activity(5);
    d
}

#[test]
fn busy_state_round_trips() {
    let d = busy_run();
    let state = &d.wf.state;
    assert_eq!(state.sticky_task_queue, STICKY_QUEUE);
    assert_eq!(state.activities.len(), 1);
    assert!(state.activities[&6].last_failure.is_some());
    assert_eq!(state.timers.len(), 1);
    assert_eq!(
        d.buffered_types(),
        vec![
            E::WorkflowExecutionSignaled,
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
        ]
    );
    assert_ne!(state.workflow_task.as_ref().unwrap().started_event_id, 0);
    assert_eq!(&assert_round_trip(state), state);
}

/// The same script applied to the live run and to a copy reloaded from bytes gives the same
/// history and the same tasks.
#[test]
fn reloaded_run_continues_identically() {
    fn script(d: &mut Driver) {
        d.advance(1_000);
        d.complete_wft(vec![]);
        d.poll_wft();
        d.fire(&d.task(TaskKind::ActivityRetry));
        d.start_activity(6);
        d.fire(&d.activity_timeout(6, TimeoutType::StartToClose));
        d.complete_wft(vec![cancel_timer("t")]);
        d.fire(&d.task(TaskKind::ActivityRetry));
        d.start_activity(6);
        d.complete_activity(6);
        d.poll_wft();
        d.complete_wft(vec![complete_workflow()]);
    }
    let mut live = busy_run();
    let mut reloaded = live.reload();
    script(&mut live);
    script(&mut reloaded);
    assert_eq!(live.history, reloaded.history);
    assert_eq!(live.tasks, reloaded.tasks);
    assert_eq!(live.wf.state, reloaded.wf.state);
    assert_eq!(
        live.types_from(11),
        vec![
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionSignaled,
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::TimerCanceled,
            E::ActivityTaskStarted,
            E::ActivityTaskCompleted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::WorkflowExecutionCompleted,
        ]
    );
    assert_eq!(
        attrs!(live.event(19), ActivityTaskStartedEventAttributes).attempt,
        3
    );
}

/// Same inputs, same history and the same state (compared as messages: protobuf encodes the
/// entries of a map, such as a payload's metadata, in any order).
#[test]
fn runs_are_deterministic() {
    let a = busy_run();
    let b = busy_run();
    assert_eq!(a.history, b.history);
    assert_eq!(a.tasks, b.tasks);
    assert_eq!(a.wf.state, b.wf.state);
}
