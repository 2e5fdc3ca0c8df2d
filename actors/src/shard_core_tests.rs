//! Unit tests of the shard's run cache: bounded by count and bytes, open runs included, and a
//! commit's cost independent of how many runs the shard has seen.

use sundial_engine::api::{
    common::v1::WorkflowType, history::v1::WorkflowExecutionStartedEventAttributes,
    taskqueue::v1::TaskQueue,
};
use sundial_engine::{Env, StartParams};
use tokio::sync::oneshot;

use super::*;
use crate::ops::{Op, RunRef, StartWorkflow};

fn start_op(workflow_id: &str) -> (Op, oneshot::Receiver<Result<StartOutcome>>) {
    let (tx, rx) = oneshot::channel();
    let start = StartWorkflow {
        params: StartParams {
            namespace_id: "ns".into(),
            workflow_id: workflow_id.into(),
            run_id: format!("run-{workflow_id}"),
            request_id: format!("req-{workflow_id}"),
            attributes: WorkflowExecutionStartedEventAttributes {
                workflow_type: Some(WorkflowType { name: "Wf".into() }),
                task_queue: Some(TaskQueue {
                    name: "q".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            namespace_name: "default".into(),
            ..Default::default()
        },
        reuse_policy: 0,
        conflict_policy: 0,
        eager_identity: None,
    };
    (Op::Start(start, tx), rx)
}

/// Applies `ops` as one batch and reports it committed.
fn commit(core: &mut ShardCore, ops: Vec<Op>) {
    let env = Env::new(1_000, "unused");
    for op in ops {
        core.apply(op, &env);
    }
    let (_, effects, touched) = core.build_batch();
    for wake in core.committed(&touched) {
        wake(None);
    }
    for reply in effects.replies {
        reply(None);
    }
}

#[test]
fn open_runs_and_current_pointers_are_evicted_past_the_count_limit() {
    let mut core = ShardCore::new(1, 1);
    core.cache_limits.runs = 10;
    for i in 0..50 {
        let (op, mut rx) = start_op(&format!("wf-{i}"));
        commit(&mut core, vec![op]);
        assert!(rx.try_recv().expect("replied").is_ok());
        let (runs, currents) = core.cached();
        assert!(runs <= 10, "{runs} runs cached after {i} starts");
        assert!(
            currents <= 10,
            "{currents} current pointers after {i} starts"
        );
    }
    // The most recent runs stay; the oldest went and must be loaded again.
    let newest = RunRef {
        namespace_id: "ns".into(),
        workflow_id: "wf-49".into(),
        run_id: String::new(),
    };
    assert!(core.resolve(&newest).is_ok());
    let oldest = RunRef {
        workflow_id: "wf-0".into(),
        ..newest
    };
    assert!(!core.has_current("ns", "wf-0"));
    assert!(core.resolve(&oldest).is_err());
}

#[test]
fn the_byte_limit_bounds_the_cache_too() {
    let mut core = ShardCore::new(1, 1);
    core.cache_limits.bytes = 2_000;
    for i in 0..50 {
        let (op, _rx) = start_op(&format!("wf-{i}"));
        commit(&mut core, vec![op]);
        assert!(
            core.cache_bytes <= 2_000,
            "{} bytes cached",
            core.cache_bytes
        );
    }
    let (runs, _) = core.cached();
    assert!((1..50).contains(&runs), "{runs} runs cached");
}

#[test]
fn runs_that_hold_memory_only_state_are_not_evicted() {
    let mut core = ShardCore::new(1, 1);
    core.cache_limits.runs = 1;
    let (op, _rx) = start_op("watched");
    commit(&mut core, vec![op]);
    let (tx, _watch) = oneshot::channel();
    let watched = RunRef {
        namespace_id: "ns".into(),
        workflow_id: "watched".into(),
        run_id: String::new(),
    };
    let env = Env::new(1_000, "unused");
    core.apply(
        Op::Watch {
            run: watched.clone(),
            next_event_id: 100,
            reply: tx,
        },
        &env,
    );
    for i in 0..5 {
        let (op, _rx) = start_op(&format!("wf-{i}"));
        commit(&mut core, vec![op]);
    }
    assert!(core.resolve(&watched).is_ok(), "a watched run was evicted");
}

#[test]
fn a_commit_marks_only_its_own_current_pointers_stored() {
    let mut core = ShardCore::new(1, 1);
    let (first, _rx) = start_op("a");
    commit(&mut core, vec![first]);
    // A pointer still being written by an uncommitted batch stays unstored.
    let env = Env::new(1_000, "unused");
    let (second, _rx) = start_op("b");
    core.apply(second, &env);
    let key = ("ns".to_string(), "b".to_string());
    assert_eq!(core.current[&key].stored_run_id, None);
    let (batch, _effects, touched) = core.build_batch();
    assert_eq!(batch.current_executions.len(), 1);
    core.rolled_back(&touched);
    assert!(!core.has_current("ns", "b"));
    assert!(core.has_current("ns", "a"));
}

#[test]
fn a_closed_run_is_deleted_once_its_namespace_retention_has_passed() {
    const RETENTION_MS: i64 = 3_600_000;
    let mut core = ShardCore::new(1, 1);
    let (op, _rx) = start_op("kept-a-while");
    commit(&mut core, vec![op]);
    let run = RunRef {
        namespace_id: "ns".into(),
        workflow_id: "kept-a-while".into(),
        run_id: String::new(),
    };
    let env = Env {
        retention_ms: Some(RETENTION_MS),
        ..Env::new(5_000, "unused")
    };
    let (tx, _rx) = oneshot::channel();
    core.apply(
        Op::Terminate {
            run: run.clone(),
            reason: "done".into(),
            details: None,
            identity: String::new(),
            reply: tx,
        },
        &env,
    );
    let (_, effects, touched) = core.build_batch();
    core.committed(&touched);
    let deletion: Vec<_> = effects
        .timers
        .into_iter()
        .filter(|t| t.task.task_kind() == TaskKind::DeleteExecution)
        .collect();
    assert_eq!(deletion.len(), 1, "one deletion timer");
    assert_eq!(deletion[0].task.fire_time_ms, 5_000 + RETENTION_MS);

    // The timer fires: the next batch deletes the run (and with it its history and pointer).
    let fired = deletion.into_iter().next().expect("one");
    core.apply(
        Op::Timer(fired.task.fire_time_ms, fired.task_id, fired.task),
        &Env::new(5_000 + RETENTION_MS, "unused"),
    );
    let (batch, _, touched) = core.build_batch();
    assert_eq!(batch.delete_executions.len(), 1);
    assert_eq!(batch.delete_executions[0].run_id, "run-kept-a-while");
    core.committed(&touched);
    assert!(core.resolve(&run).is_err());
}

#[test]
fn without_a_known_retention_nothing_is_deleted() {
    let mut core = ShardCore::new(1, 1);
    let (op, _rx) = start_op("unknown-namespace");
    commit(&mut core, vec![op]);
    let (tx, _rx) = oneshot::channel();
    core.apply(
        Op::Terminate {
            run: RunRef {
                namespace_id: "ns".into(),
                workflow_id: "unknown-namespace".into(),
                run_id: String::new(),
            },
            reason: "done".into(),
            details: None,
            identity: String::new(),
            reply: tx,
        },
        &Env::new(5_000, "unused"),
    );
    let (_, effects, _) = core.build_batch();
    assert!(
        effects
            .timers
            .iter()
            .all(|t| t.task.task_kind() != TaskKind::DeleteExecution)
    );
}
