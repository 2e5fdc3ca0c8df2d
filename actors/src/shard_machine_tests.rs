//! The shard's semantics as a plain state machine: requests in, replies and effects out, no
//! actix and no store. Each test drives a [`ShardCore`] through [`Driver`] as the actor would.

use sundial_engine::api::{
    enums::v1::{
        EventType, QueryRejectCondition, QueryResultType, UpdateWorkflowExecutionLifecycleStage,
        WorkflowExecutionStatus, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
    },
    protocol::v1::Message as ProtocolMessage,
    query::v1::{WorkflowQuery, WorkflowQueryResult},
    update::v1::{Acceptance, Input, Meta, Request as UpdateBody},
};
use sundial_engine::{MutableState, Reapply, ResetParams, Signal, UpdateStatus};

use super::*;
use crate::ops::{Request, ResetWorkflow, RunChange};
use crate::query_buffer::QueryRoute;
use crate::testkit::{
    Driver, STICKY_QUEUE, complete_workflow, completion, current, run, start, sticky_completion,
};
use crate::updates::{UpdateAnswer, UpdateRequest};

fn types(events: &[HistoryEvent]) -> Vec<EventType> {
    events
        .iter()
        .map(|e| EventType::try_from(e.event_type).unwrap_or(EventType::Unspecified))
        .collect()
}

fn signal(name: &str) -> Signal {
    Signal {
        name: name.into(),
        identity: "client".into(),
        ..Default::default()
    }
}

/// A start of `workflow_id` as its own run `run_id`, with a request id of its own.
fn start_as(workflow_id: &str, run_id: &str) -> StartWorkflow {
    let mut s = start(workflow_id);
    s.params.run_id = run_id.into();
    s.params.request_id = format!("req-{run_id}");
    s
}

fn describe(d: &mut Driver, run: RunRef) -> MutableState {
    d.call(Request::Describe(run)).expect("described")
}

/// Starts `workflow_id` and completes it through its first workflow task.
fn start_and_complete(d: &mut Driver, workflow_id: &str, run_id: &str) {
    let _: StartOutcome = d
        .call(Request::Start(start_as(workflow_id, run_id)))
        .expect("started");
    let task = d.poll_workflow_task(workflow_id);
    d.complete_workflow_task(&task, completion(vec![complete_workflow()]))
        .expect("completed");
}

#[test]
fn replies_are_released_only_by_the_commit_of_their_batch() {
    let mut d = Driver::new();
    let ticket = d.send(Request::Start(start("wf")));
    assert!(!d.answered(ticket), "answered before anything was stored");
    let (batch, effects, touched) = d.core.build_batch(&|_| None);
    assert_eq!(batch.executions.len(), 1);
    assert_eq!(batch.transfer_tasks.len(), 1, "the first workflow task");
    assert_eq!(effects.replies.len(), 1);
    assert_eq!(effects.replies[0].0, ticket);
    // The commit failed: the reply goes out with the error instead (the actor's part), and
    // the run is not known any more.
    d.core.rolled_back(&touched);
    assert!(!d.core.has_current("ns", "wf"));
}

#[test]
fn a_start_repeated_with_its_request_id_returns_the_same_run() {
    let mut d = Driver::new();
    let first: StartOutcome = d.call(Request::Start(start("wf"))).expect("started");
    let mut again = start("wf");
    again.params.run_id = "another-run".into();
    let second: StartOutcome = d.call(Request::Start(again)).expect("deduplicated");
    assert_eq!(second.run_id, first.run_id);
    assert!(second.started);
    assert!(d.last_batch.is_empty(), "a duplicate writes nothing");
}

#[test]
fn conflict_policies_decide_a_start_while_a_run_is_open() {
    let mut d = Driver::new();
    let _: StartOutcome = d
        .call(Request::Start(start_as("wf", "r1")))
        .expect("started");

    let refused: Result<StartOutcome> = d.call(Request::Start(start_as("wf", "r2")));
    assert!(
        matches!(&refused, Err(Error::WorkflowAlreadyStarted { run_id, .. }) if run_id == "r1"),
        "{refused:?}"
    );

    let mut existing = start_as("wf", "r3");
    existing.conflict_policy = WorkflowIdConflictPolicy::UseExisting as i32;
    let used: StartOutcome = d.call(Request::Start(existing)).expect("existing run");
    assert_eq!((used.run_id.as_str(), used.started), ("r1", false));

    let mut replace = start_as("wf", "r4");
    replace.conflict_policy = WorkflowIdConflictPolicy::TerminateExisting as i32;
    let replaced: StartOutcome = d.call(Request::Start(replace)).expect("replaced");
    assert_eq!((replaced.run_id.as_str(), replaced.started), ("r4", true));
    let old = describe(&mut d, run("wf", "r1"));
    assert_eq!(old.status, WorkflowExecutionStatus::Terminated as i32);
    assert_eq!(
        d.core.current_run_id("ns", "wf").as_deref(),
        Some("r4"),
        "the new run is current"
    );
}

#[test]
fn reuse_policies_decide_a_start_after_the_run_closed() {
    let mut d = Driver::new();
    start_and_complete(&mut d, "wf", "r1");

    let mut reject = start_as("wf", "r2");
    reject.reuse_policy = WorkflowIdReusePolicy::RejectDuplicate as i32;
    let refused: Result<StartOutcome> = d.call(Request::Start(reject));
    assert!(matches!(refused, Err(Error::WorkflowAlreadyStarted { .. })));

    // Completed is not a failure: AllowDuplicateFailedOnly refuses it...
    let mut failed_only = start_as("wf", "r3");
    failed_only.reuse_policy = WorkflowIdReusePolicy::AllowDuplicateFailedOnly as i32;
    let refused: Result<StartOutcome> = d.call(Request::Start(failed_only));
    assert!(matches!(refused, Err(Error::WorkflowAlreadyStarted { .. })));

    // ...and takes a terminated run.
    let _: StartOutcome = d
        .call(Request::Start(start_as("wf", "r4")))
        .expect("allowed");
    let _: () = d
        .call(Request::Terminate {
            run: current("wf"),
            reason: "stop".into(),
            details: None,
            identity: "client".into(),
        })
        .expect("terminated");
    let mut failed_only = start_as("wf", "r5");
    failed_only.reuse_policy = WorkflowIdReusePolicy::AllowDuplicateFailedOnly as i32;
    let started: StartOutcome = d.call(Request::Start(failed_only)).expect("allowed");
    assert_eq!(started.run_id, "r5");
}

#[test]
fn signal_with_start_starts_a_run_with_the_signal_or_signals_the_open_one() {
    let mut d = Driver::new();
    let started: StartOutcome = d
        .call(Request::SignalWithStart(
            start_as("wf", "r1"),
            signal("first"),
        ))
        .expect("started");
    assert!(started.started);
    assert_eq!(
        types(d.events("r1")),
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowExecutionSignaled,
            EventType::WorkflowTaskScheduled,
        ]
    );

    let signalled: StartOutcome = d
        .call(Request::SignalWithStart(
            start_as("wf", "r2"),
            signal("second"),
        ))
        .expect("signalled");
    assert_eq!(
        (signalled.run_id.as_str(), signalled.started),
        ("r1", false)
    );
    assert_eq!(describe(&mut d, current("wf")).signal_count, 2);
}

fn update(update_id: &str) -> UpdateBody {
    UpdateBody {
        meta: Some(Meta {
            update_id: update_id.into(),
            identity: "client".into(),
        }),
        input: Some(Input {
            name: "set".into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The worker's acceptance of the update request `request`.
fn acceptance_of(request: &ProtocolMessage) -> ProtocolMessage {
    let acceptance = Acceptance {
        accepted_request_message_id: request.id.clone(),
        ..Default::default()
    };
    ProtocolMessage {
        id: format!("{}/accept", request.protocol_instance_id),
        protocol_instance_id: request.protocol_instance_id.clone(),
        sequencing_id: None,
        body: Some(prost_wkt_types::Any {
            type_url: "type.googleapis.com/temporal.api.update.v1.Acceptance".into(),
            value: acceptance.encode_to_vec(),
        }),
    }
}

#[test]
fn update_with_start_answers_the_start_then_the_update_on_the_next_ticket() {
    let mut d = Driver::new();
    let ticket = d.send(Request::Update(UpdateRequest::UpdateWithStart {
        start: Box::new(start_as("wf", "r1")),
        request: update("u1"),
        stage: UpdateWorkflowExecutionLifecycleStage::Accepted as i32,
    }));
    d.commit();
    let started: StartOutcome = d.take(ticket).expect("answered").expect("started");
    assert_eq!(started.run_id, "r1");
    assert!(
        !d.answered(ticket.next()),
        "the update is not accepted until a worker accepts it"
    );

    // The worker's first workflow task carries the update; it accepts it.
    let task = d.poll_workflow_task("wf");
    assert!(
        !task.start.messages.is_empty(),
        "the workflow task carries the update request"
    );
    let acceptance = acceptance_of(&task.start.messages[0]);
    let mut accept = completion(vec![]);
    accept.messages = vec![acceptance];
    d.complete_workflow_task(&task, accept).expect("completed");
    let answer: UpdateAnswer = d
        .take(ticket.next())
        .expect("answered once accepted")
        .expect("accepted");
    assert_eq!(
        answer,
        UpdateAnswer::Reached {
            run_id: "r1".into(),
            status: UpdateStatus::Accepted,
        }
    );
}

/// A query of the current run of `wf`.
fn query(reject_condition: i32) -> Request {
    Request::Query {
        run: current("wf"),
        query: WorkflowQuery {
            query_type: "state".into(),
            ..Default::default()
        },
        reject_condition,
    }
}

#[test]
fn a_query_before_the_first_workflow_task_completed_rides_on_the_next_one() {
    let mut d = Driver::new();
    let _: StartOutcome = d
        .call(Request::Start(start_as("wf", "r1")))
        .expect("started");
    let ticket = d.send(query(0));
    d.commit();
    assert!(
        !d.answered(ticket),
        "buffered until a workflow task carries it"
    );

    let task = d.poll_workflow_task("wf");
    assert_eq!(task.queries.len(), 1, "the task carries the buffered query");
    let query_id = task.queries.keys().next().expect("one").clone();
    let mut done = completion(vec![]);
    done.query_results.insert(
        query_id,
        WorkflowQueryResult {
            result_type: QueryResultType::Answered as i32,
            ..Default::default()
        },
    );
    d.complete_workflow_task(&task, done).expect("completed");
    let route: QueryRoute = d.take(ticket).expect("answered").expect("ok");
    assert!(
        matches!(route, QueryRoute::Answered(r) if r.result_type == QueryResultType::Answered as i32)
    );
}

#[test]
fn a_query_goes_straight_to_the_worker_or_is_rejected_once_a_task_completed() {
    let mut d = Driver::new();
    start_and_complete(&mut d, "wf", "r1");
    let direct: QueryRoute = d.call(query(0)).expect("routed");
    assert!(matches!(direct, QueryRoute::Direct(state) if state.run_id == "r1"));
    let rejected: QueryRoute = d
        .call(query(QueryRejectCondition::NotOpen as i32))
        .expect("routed");
    assert!(matches!(
        rejected,
        QueryRoute::Rejected(s) if s == WorkflowExecutionStatus::Completed as i32
    ));
}

#[test]
fn a_buffered_query_whose_caller_left_frees_the_buffer() {
    let mut d = Driver::new();
    let _: StartOutcome = d
        .call(Request::Start(start_as("wf", "r1")))
        .expect("started");
    let gone = d.send(query(0));
    let full: Result<QueryRoute> = d.call(query(0));
    assert!(matches!(full, Err(Error::ResourceExhausted(_))), "{full:?}");
    d.core.forget(|t| t == gone);
    let next = d.send(query(0));
    d.commit();
    assert!(!d.answered(next), "buffered in the freed place");
}

#[test]
fn a_watcher_wakes_with_the_commit_that_passes_its_event() {
    let mut d = Driver::new();
    let _: StartOutcome = d
        .call(Request::Start(start_as("wf", "r1")))
        .expect("started");
    let next = describe(&mut d, current("wf")).next_event_id;
    let watch = d.send(Request::Watch {
        run: current("wf"),
        next_event_id: next,
    });
    d.commit();
    assert!(!d.answered(watch), "no event past the one asked for yet");
    d.send(Request::Signal(current("wf"), signal("s")));
    assert!(!d.answered(watch), "the signal is not committed yet");
    d.commit();
    let state: MutableState = d.take(watch).expect("woken").expect("state");
    assert!(state.next_event_id > next);
}

#[test]
fn reset_makes_a_new_current_run_from_a_prefix_of_the_base_run() {
    let mut d = Driver::new();
    let _: StartOutcome = d
        .call(Request::Start(start_as("wf", "r1")))
        .expect("started");
    let task = d.poll_workflow_task("wf");
    d.complete_workflow_task(&task, completion(vec![]))
        .expect("completed");
    d.call::<()>(Request::Signal(current("wf"), signal("after")))
        .expect("signalled");
    let base = describe(&mut d, run("wf", "r1"));
    let events = d.events("r1").to_vec();
    let completed = events
        .iter()
        .find(|e| e.event_type == EventType::WorkflowTaskCompleted as i32)
        .expect("a completed workflow task")
        .event_id;
    let new_run: String = d
        .call(Request::Reset(Box::new(ResetWorkflow {
            current: current("wf"),
            base,
            base_events: events,
            later_runs: Vec::new(),
            params: ResetParams {
                workflow_task_finish_event_id: completed,
                reason: "try again".into(),
                request_id: "reset-1".into(),
            },
            reapply: Reapply::default(),
        })))
        .expect("reset");
    assert_eq!(d.core.current_run_id("ns", "wf"), Some(new_run.clone()));
    let old = describe(&mut d, run("wf", "r1"));
    assert_eq!(old.status, WorkflowExecutionStatus::Terminated as i32);
    assert_eq!(old.reset_run_id, new_run);
    let new_types = types(d.events(&new_run));
    assert_eq!(
        new_types[..4],
        [
            EventType::WorkflowExecutionStarted,
            EventType::WorkflowTaskScheduled,
            EventType::WorkflowTaskStarted,
            EventType::WorkflowTaskFailed,
        ],
        "the prefix, then the reset's failed workflow task"
    );
    assert!(
        new_types.contains(&EventType::WorkflowExecutionSignaled),
        "the signal after the reset point is re-applied: {new_types:?}"
    );
}

#[test]
fn a_sticky_workflow_task_falls_back_to_the_normal_queue() {
    let mut d = Driver::new();
    let _: StartOutcome = d
        .call(Request::Start(start_as("wf", "r1")))
        .expect("started");
    let task = d.poll_workflow_task("wf");
    d.complete_workflow_task(&task, sticky_completion(vec![]))
        .expect("completed");
    d.call::<()>(Request::Signal(current("wf"), signal("wake")))
        .expect("signalled");
    let dispatch = d.take_workflow_task("wf");
    assert!(dispatch.task.sticky);
    assert_eq!(dispatch.task.task_queue, STICKY_QUEUE);
    let fallback = dispatch
        .sticky_fallback()
        .expect("a sticky task has a fallback");
    assert!(!fallback.sticky);
    assert_eq!(fallback.task_queue, "q");
    assert_eq!(
        fallback.scheduled_event_id,
        dispatch.task.scheduled_event_id
    );

    // ResetStickyTaskQueue: the next workflow task goes to the normal queue.
    let poll = d.start_workflow_task(dispatch);
    d.call::<()>(Request::Apply {
        run: current("wf"),
        change: RunChange::ResetStickyTaskQueue,
    })
    .expect("reset sticky");
    d.complete_workflow_task(&poll, completion(vec![]))
        .expect("completed");
    d.call::<()>(Request::Signal(current("wf"), signal("again")))
        .expect("signalled");
    let next = d.take_workflow_task("wf");
    assert!(!next.task.sticky);
    assert_eq!(next.task.task_queue, "q");
    assert!(next.sticky_fallback().is_none());
}
