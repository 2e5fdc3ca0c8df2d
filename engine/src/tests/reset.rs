//! ResetWorkflowExecution (reset.rs): the new run keeps the base history before the reset
//! point, fails the pending workflow task with RESET_WORKFLOW, re-arms what was pending and
//! re-applies later signals; points without a pending workflow task are refused.

use temporalio_protos::temporal::api::{
    enums::v1::WorkflowTaskFailedCause, history::v1::history_event::Attributes,
};

use super::driver::*;
use crate::{Env, Error, ResetParams, Signal, TaskKind, Workflow};

/// 1 Started, 2 WFTScheduled, 3 WFTStarted, 4 WFTCompleted, 5 ActivityTaskScheduled,
/// 6 TimerStarted, 7 Signaled(s1), 8 WFTScheduled, 9 WFTStarted, 10 WFTCompleted.
fn base_run() -> Driver {
    let mut d = Driver::start();
    d.poll_wft();
    d.complete_wft(vec![schedule_activity("a"), start_timer("t", 60_000)]);
    d.advance(1_000);
    d.signal("s1");
    d.poll_wft();
    d.complete_wft(vec![]);
    assert_eq!(d.wf.state.next_event_id, 11);
    d
}

fn reset_to(d: &Driver, finish: i64) -> crate::Result<Workflow> {
    let params = ResetParams {
        workflow_task_finish_event_id: finish,
        reason: "reset it".into(),
        request_id: "reset-1".into(),
    };
    let env = Env::new(d.now_ms, "run-reset");
    Workflow::reset_from(&d.wf.state, &d.history, &params, &env)
}

/// Re-applies the base run's events from `from` on, as the shard does.
fn reapply_from(wf: &mut Workflow, base: &Driver, from: i64) {
    let env = Env::new(base.now_ms, "unused");
    let later: Vec<_> = base
        .history
        .iter()
        .filter(|e| e.event_id >= from)
        .cloned()
        .collect();
    wf.reapply_after_reset(&later, crate::Reapply::default(), &env);
}

fn failed_attributes(d: &Driver, id: i64) -> (i64, i64, i32, String, String, String) {
    let Some(Attributes::WorkflowTaskFailedEventAttributes(a)) = &d.event(id).attributes else {
        panic!("event {id} is not WorkflowTaskFailed");
    };
    (
        a.scheduled_event_id,
        a.started_event_id,
        a.cause,
        a.failure.as_ref().unwrap().message.clone(),
        a.base_run_id.clone(),
        a.new_run_id.clone(),
    )
}

#[test]
fn reset_to_first_completed_task_keeps_prefix_and_reapplies_signals() {
    let base = base_run();
    let mut wf = reset_to(&base, 4).unwrap();
    reapply_from(&mut wf, &base, 4);
    wf.finish_reset(&Env::new(base.now_ms, "unused"));
    let d = Driver::from_workflow(wf, base.now_ms);
    assert_eq!(
        d.types(),
        vec![
            E::WorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskFailed,
            E::WorkflowExecutionSignaled,
            E::WorkflowTaskScheduled,
        ]
    );
    // The kept events are the base run's own, the started one included.
    assert_eq!(&d.history[..3], &base.history[..3]);
    assert_eq!(
        failed_attributes(&d, 4),
        (
            2,
            3,
            WorkflowTaskFailedCause::ResetWorkflow as i32,
            "reset it".into(),
            "run-1".into(),
            "run-reset".into()
        )
    );
    let state = &d.wf.state;
    assert_eq!(state.run_id, "run-reset");
    assert_eq!(state.start_request_id, "start-1");
    assert!(state.activities.is_empty() && state.timers.is_empty());
    assert_eq!(state.signal_count, 1);
    let task = state.workflow_task.as_ref().unwrap();
    assert_eq!((task.scheduled_event_id, task.attempt), (6, 1));
    assert_eq!(task.task_queue, TASK_QUEUE);
    assert_eq!(d.last_task_kinds(), vec![TaskKind::DispatchWorkflowTask]);
}

#[test]
fn work_pending_at_the_point_is_rearmed() {
    let base = base_run();
    let mut wf = reset_to(&base, 10).unwrap();
    wf.finish_reset(&Env::new(base.now_ms, "unused"));
    let d = Driver::from_workflow(wf, base.now_ms);
    assert_eq!(d.types()[..9], base.types()[..9]);
    assert_eq!(
        d.types_from(10),
        vec![E::WorkflowTaskFailed, E::WorkflowTaskScheduled]
    );
    let state = &d.wf.state;
    assert_eq!(
        state.activities.keys().copied().collect::<Vec<_>>(),
        vec![5]
    );
    assert_eq!(state.activities[&5].scheduled_time_ms, base.now_ms);
    assert_eq!(state.timers["t"].expiry_time_ms, T0 + 60_000);
    // The signal before the point counts, and is not re-applied.
    assert_eq!(state.signal_count, 1);
    let dispatch = d.task(TaskKind::DispatchActivityTask);
    assert_eq!((dispatch.scheduled_event_id, dispatch.attempt), (5, 1));
    let timer = d.task(TaskKind::UserTimer);
    assert_eq!(
        (timer.timer_id.as_str(), timer.fire_time_ms),
        ("t", T0 + 60_000)
    );
    assert_eq!(state.last_completed_wft_started_event_id, 3);
}

#[test]
fn reset_to_a_scheduled_task_writes_its_started_event() {
    let base = base_run();
    // Finish id 9 (the WorkflowTaskStarted): the task scheduled at 8 has not started.
    let wf = reset_to(&base, 9).unwrap();
    let d = Driver::from_workflow(wf, base.now_ms);
    assert_eq!(
        d.types_from(9),
        vec![E::WorkflowTaskStarted, E::WorkflowTaskFailed]
    );
    let Some(Attributes::WorkflowTaskStartedEventAttributes(started)) = &d.event(9).attributes
    else {
        panic!("event 9 is not WorkflowTaskStarted");
    };
    assert_eq!(started.scheduled_event_id, 8);
    assert_eq!(started.identity, crate::RESET_IDENTITY);
    assert_eq!(started.request_id, "emptyUuid");
    assert_eq!(failed_attributes(&d, 10).1, 9);
}

#[test]
fn points_without_a_pending_workflow_task_are_refused() {
    let base = base_run();
    for finish in [0, 1, 11, 12] {
        let err = reset_to(&base, finish).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.starts_with("Workflow task finish ID")),
            "{finish}: {err:?}"
        );
    }
    // Just after a completed task, or after events that followed it, nothing is pending.
    for finish in [5, 6, 7] {
        let err = reset_to(&base, finish).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.starts_with("Can only reset workflow")),
            "{finish}: {err:?}"
        );
    }
    // A history that does not reach the point is refused too.
    let mut partial = base.reload();
    partial.history.truncate(2);
    assert!(matches!(
        reset_to(&partial, 4),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn reapplied_signals_are_deduplicated_by_request_id() {
    let mut base = Driver::start();
    base.poll_wft();
    base.complete_wft(vec![]);
    for request_id in ["r1", "r1", "r2", ""] {
        base.try_signal(Signal {
            name: "s".into(),
            request_id: request_id.into(),
            ..Default::default()
        })
        .unwrap();
    }
    let mut wf = reset_to(&base, 4).unwrap();
    reapply_from(&mut wf, &base, 4);
    // Offered again (as a later run's copy would be): signals with a request id apply once; one
    // without cannot be told apart and applies again.
    reapply_from(&mut wf, &base, 4);
    let d = Driver::from_workflow(wf, base.now_ms);
    assert_eq!(d.types_from(5), vec![E::WorkflowExecutionSignaled; 4]);
    let request_ids: Vec<String> = d.history[4..]
        .iter()
        .map(|e| match &e.attributes {
            Some(Attributes::WorkflowExecutionSignaledEventAttributes(a)) => a.request_id.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(request_ids, ["r1", "r2", "", ""]);
    assert_eq!(d.wf.state.signal_count, 4);
}

/// A child pending at the reset point that started or closed after it: those events are
/// written again in the new run (as Temporal does), so it does not wait for a finished child.
#[test]
fn child_events_after_the_point_are_written_again() {
    use temporalio_protos::temporal::api::{
        command::v1::{
            Command, StartChildWorkflowExecutionCommandAttributes, command::Attributes as Cmd,
        },
        common::v1::WorkflowType,
        enums::v1::CommandType,
        history::v1::{HistoryEvent, WorkflowExecutionCompletedEventAttributes},
    };

    let mut base = Driver::start();
    base.poll_wft();
    base.complete_wft(vec![Command {
        command_type: CommandType::StartChildWorkflowExecution as i32,
        attributes: Some(Cmd::StartChildWorkflowExecutionCommandAttributes(
            StartChildWorkflowExecutionCommandAttributes {
                workflow_id: "child-1".into(),
                workflow_type: Some(WorkflowType {
                    name: "Child".into(),
                }),
                ..Default::default()
            },
        )),
        ..Default::default()
    }]);
    let env = base.env();
    base.wf.child_started(5, "child-run", &env).unwrap();
    base.collect();
    base.poll_wft();
    base.complete_wft(vec![]);
    let close = HistoryEvent {
        attributes: Some(Attributes::WorkflowExecutionCompletedEventAttributes(
            WorkflowExecutionCompletedEventAttributes::default(),
        )),
        ..Default::default()
    };
    let env = base.env();
    base.wf.child_closed(5, "child-run", &close, &env).unwrap();
    base.collect();
    assert_eq!(
        base.types_from(5),
        vec![
            E::StartChildWorkflowExecutionInitiated,
            E::ChildWorkflowExecutionStarted,
            E::WorkflowTaskScheduled,
            E::WorkflowTaskStarted,
            E::WorkflowTaskCompleted,
            E::ChildWorkflowExecutionCompleted,
            E::WorkflowTaskScheduled,
        ]
    );

    // Reset to the task after the child started: its completion is written again.
    let mut wf = reset_to(&base, 9).unwrap();
    reapply_from(&mut wf, &base, 9);
    wf.finish_reset(&Env::new(base.now_ms, "unused"));
    let d = Driver::from_workflow(wf, base.now_ms);
    assert_eq!(
        d.types_from(9),
        vec![
            E::WorkflowTaskFailed,
            E::ChildWorkflowExecutionCompleted,
            E::WorkflowTaskScheduled,
        ]
    );
    let Some(Attributes::ChildWorkflowExecutionCompletedEventAttributes(done)) =
        &d.event(10).attributes
    else {
        panic!("event 10 is not ChildWorkflowExecutionCompleted");
    };
    assert_eq!((done.initiated_event_id, done.started_event_id), (5, 6));
    assert!(d.wf.state.children.is_empty());
    assert!(
        d.tasks
            .iter()
            .all(|t| t.task_kind() != TaskKind::StartChild)
    );

    // Reset before the child was even initiated: nothing of it comes back.
    let mut wf = reset_to(&base, 4).unwrap();
    reapply_from(&mut wf, &base, 4);
    let d = Driver::from_workflow(wf, base.now_ms);
    assert_eq!(d.types_from(4), vec![E::WorkflowTaskFailed]);
}
