//! Unit tests of the shard's run cache: bounded by count and bytes, open runs included, and a
//! commit's cost independent of how many runs the shard has seen.

use super::*;
use crate::ops::{Request, RunRef};
use crate::testkit::{Driver, current, start};

/// Starts `workflow_id` and commits.
fn started(d: &mut Driver, workflow_id: &str) {
    let outcome: StartOutcome = d.call(Request::Start(start(workflow_id))).expect("started");
    assert!(outcome.started);
}

#[test]
fn open_runs_and_current_pointers_are_evicted_past_the_count_limit() {
    let mut d = Driver::new();
    d.core.cache_limits.runs = 10;
    for i in 0..50 {
        started(&mut d, &format!("wf-{i}"));
        let (runs, currents) = d.core.cached();
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
    assert!(d.core.resolve(&newest).is_ok());
    let oldest = RunRef {
        workflow_id: "wf-0".into(),
        ..newest
    };
    assert!(!d.core.has_current("ns", "wf-0"));
    assert!(d.core.resolve(&oldest).is_err());
}

#[test]
fn the_byte_limit_bounds_the_cache_too() {
    let mut d = Driver::new();
    d.core.cache_limits.bytes = 2_000;
    for i in 0..50 {
        started(&mut d, &format!("wf-{i}"));
        assert!(
            d.core.cache_bytes <= 2_000,
            "{} bytes cached",
            d.core.cache_bytes
        );
    }
    let (runs, _) = d.core.cached();
    assert!((1..50).contains(&runs), "{runs} runs cached");
}

#[test]
fn runs_that_hold_memory_only_state_are_not_evicted() {
    let mut d = Driver::new();
    d.core.cache_limits.runs = 1;
    started(&mut d, "watched");
    let watched = current("watched");
    let watch = d.send(Request::Watch {
        run: watched.clone(),
        next_event_id: 100,
    });
    for i in 0..5 {
        started(&mut d, &format!("wf-{i}"));
    }
    assert!(!d.answered(watch), "nothing reached event 100 yet");
    assert!(
        d.core.resolve(&watched).is_ok(),
        "a watched run was evicted"
    );
}

#[test]
fn a_commit_marks_only_its_own_current_pointers_stored() {
    let mut d = Driver::new();
    started(&mut d, "a");
    // A pointer still being written by an uncommitted batch stays unstored.
    d.send(Request::Start(start("b")));
    let key = ("ns".to_string(), "b".to_string());
    assert_eq!(d.core.current[&key].stored_run_id, None);
    let (batch, _effects, touched) = d.core.build_batch(&|_| None);
    assert_eq!(batch.current_executions.len(), 1);
    d.core.rolled_back(&touched);
    assert!(!d.core.has_current("ns", "b"));
    assert!(d.core.has_current("ns", "a"));
}

#[test]
fn a_closed_run_is_deleted_once_its_namespace_retention_has_passed() {
    const RETENTION_MS: i64 = 3_600_000;
    let mut d = Driver::new();
    started(&mut d, "kept-a-while");
    let run = current("kept-a-while");
    d.retention_ms = Some(RETENTION_MS);
    d.now_ms = 5_000;
    let terminated: Result<()> = d.call(Request::Terminate {
        run: run.clone(),
        reason: "done".into(),
        details: None,
        identity: String::new(),
    });
    terminated.expect("terminated");
    let deletion: Vec<_> = std::mem::take(&mut d.timers)
        .into_iter()
        .filter(|t| t.task.task_kind() == TaskKind::DeleteExecution)
        .collect();
    assert_eq!(deletion.len(), 1, "one deletion timer");
    assert_eq!(deletion[0].task.fire_time_ms, 5_000 + RETENTION_MS);

    // The timer fires: the next batch deletes the run (and with it its history and pointer).
    let fired = deletion.into_iter().next().expect("one");
    d.now_ms = 5_000 + RETENTION_MS;
    d.send(Request::Timer(
        fired.task.fire_time_ms,
        fired.task_id,
        fired.task,
    ));
    d.commit();
    let batch = &d.last_batch;
    assert_eq!(batch.delete_executions.len(), 1);
    assert_eq!(batch.delete_executions[0].run_id, "run-of-kept-a-while");
    assert!(d.core.resolve(&run).is_err());
}

#[test]
fn without_a_known_retention_nothing_is_deleted() {
    let mut d = Driver::new();
    started(&mut d, "unknown-namespace");
    let terminated: Result<()> = d.call(Request::Terminate {
        run: current("unknown-namespace"),
        reason: "done".into(),
        details: None,
        identity: String::new(),
    });
    terminated.expect("terminated");
    assert!(
        d.timers
            .iter()
            .all(|t| t.task.task_kind() != TaskKind::DeleteExecution)
    );
}

#[test]
fn a_run_named_by_its_id_is_read_with_its_workflows_current_pointer() {
    let d = Driver::new();
    let by_id = Request::Describe(crate::testkit::run("wf", "r1"));
    let current = Request::Describe(current("other"));
    let (currents, runs) = d.core.reads_for([&by_id, &current].into_iter());
    assert_eq!(
        currents,
        [
            ("ns".to_string(), "other".to_string()),
            ("ns".into(), "wf".into())
        ],
        "closing a run updates its pointer, so the pointer is read with it"
    );
    assert_eq!(runs.len(), 1, "the pointer's read brings the current run");
    assert_eq!(runs[0].run_id, "r1");
}

#[test]
fn a_runs_visibility_record_is_written_at_its_start_and_close_only() {
    let mut d = Driver::new();
    started(&mut d, "listed");
    let records = &d.last_batch.visibility;
    assert_eq!(records.len(), 1, "the start writes the record");
    assert_eq!(
        (records[0].workflow_id.as_str(), records[0].status),
        ("listed", WorkflowExecutionStatus::Running as i32)
    );
    assert_eq!(records[0].close_time, None);

    // A signal changes nothing a listing shows.
    let signalled: Result<()> = d.call(Request::Signal(
        current("listed"),
        sundial_engine::Signal {
            name: "poke".into(),
            ..Default::default()
        },
    ));
    signalled.expect("signalled");
    assert!(!d.last_batch.executions.is_empty());
    assert!(d.last_batch.visibility.is_empty());

    d.now_ms = 9_000;
    let terminated: Result<()> = d.call(Request::Terminate {
        run: current("listed"),
        reason: "done".into(),
        details: None,
        identity: String::new(),
    });
    terminated.expect("terminated");
    let records = &d.last_batch.visibility;
    assert_eq!(records.len(), 1, "the close writes the record");
    assert_eq!(
        records[0].status,
        WorkflowExecutionStatus::Terminated as i32
    );
    assert!(records[0].close_time.is_some());
    assert_eq!(
        records[0].history_length,
        Some(d.events("run-of-listed").len() as i64)
    );
}

#[test]
#[allow(deprecated)] // the stamp is deprecated in the API; SDKs still send it, as here
fn a_workflow_task_of_a_new_build_rewrites_the_runs_record_with_its_build_ids() {
    use sundial_storage::visibility::IndexedValue;
    let mut d = Driver::new();
    started(&mut d, "built");
    let task = d.poll_workflow_task("built");
    let mut request = crate::testkit::completion(Vec::new());
    request.worker_version_stamp = Some(sundial_engine::api::common::v1::WorkerVersionStamp {
        build_id: "b1".into(),
        use_versioning: false,
    });
    d.complete_workflow_task(&task, request).expect("completed");
    let records = &d.last_batch.visibility;
    assert_eq!(records.len(), 1, "the new build ids are listed");
    assert_eq!(
        records[0].indexed.get("BuildIds"),
        Some(&IndexedValue::KeywordList(vec![
            "unversioned".into(),
            "unversioned:b1".into()
        ]))
    );
}
