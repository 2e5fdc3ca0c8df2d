//! Platform limits: pending counts fail the task, oversized payloads terminate the run,
//! history limits suggest continue-as-new and then terminate, signal counts are capped.

use temporalio_protos::temporal::api::{
    common::v1::Payload,
    enums::v1::{SuggestContinueAsNewReason, WorkflowExecutionStatus, WorkflowTaskFailedCause},
};

use super::driver::*;
use crate::{Error, Signal};

#[test]
fn pending_activity_limit_fails_the_task() {
    let mut d = Driver::start();
    d.limits.pending_activities = 1;
    d.poll_wft();
    let outcome = d.complete_wft(vec![schedule_activity("a"), schedule_activity("b")]);
    assert_eq!(
        outcome.rejected.unwrap().cause,
        WorkflowTaskFailedCause::PendingActivitiesLimitExceeded
    );
    assert!(d.wf.is_open());
    assert!(d.wf.state.activities.is_empty());
}

#[test]
fn oversized_payload_fails_the_task_and_terminates_the_run() {
    let mut d = Driver::start();
    d.limits.blob_size_error = 64;
    d.poll_wft();
    let outcome = d.complete_wft(vec![schedule_activity_with("a", 10_000, |a| {
        a.input.as_mut().unwrap().payloads.push(Payload {
            data: vec![7; 100],
            ..Default::default()
        });
    })]);
    assert!(outcome.rejected.unwrap().terminate);
    assert_eq!(
        d.last_types(),
        vec![E::WorkflowTaskFailed, E::WorkflowExecutionTerminated]
    );
    let failed = attrs!(d.event(4), WorkflowTaskFailedEventAttributes);
    assert_eq!(
        failed.cause,
        WorkflowTaskFailedCause::BadScheduleActivityAttributes as i32
    );
    assert_eq!(
        d.wf.state.status,
        WorkflowExecutionStatus::Terminated as i32
    );
}

#[test]
fn long_histories_suggest_continue_as_new_then_terminate() {
    let mut d = Driver::start();
    d.limits.history_count_suggest_continue_as_new = 5;
    d.poll_wft();
    let started = attrs!(d.event(3), WorkflowTaskStartedEventAttributes);
    assert!(!started.suggest_continue_as_new);
    d.complete_wft(vec![start_timer("t", 60_000)]);
    d.signal("s");
    d.poll_wft();
    let started = attrs!(d.event(8), WorkflowTaskStartedEventAttributes);
    assert!(started.suggest_continue_as_new);
    assert_eq!(
        started.suggest_continue_as_new_reasons,
        vec![SuggestContinueAsNewReason::TooManyHistoryEvents as i32]
    );

    let mut env = d.env();
    env.limits.history_count_error = 5;
    d.wf.enforce_history_limits(&env).unwrap();
    d.collect();
    assert_eq!(
        d.wf.state.status,
        WorkflowExecutionStatus::Terminated as i32
    );
    let terminated = attrs!(
        d.history.last().unwrap(),
        WorkflowExecutionTerminatedEventAttributes
    );
    assert_eq!(terminated.reason, "Workflow history count exceeds limit.");
}

#[test]
fn signal_count_is_capped() {
    let mut d = Driver::start();
    d.limits.signals_per_execution = 2;
    d.signal("a");
    d.signal("b");
    let result = d.unchanged(|d| {
        d.try_signal(Signal {
            name: "c".into(),
            ..Default::default()
        })
    });
    assert!(matches!(result, Err(Error::LimitExceeded(_))));
}

#[test]
fn search_attribute_limits_fail_the_upsert() {
    use temporalio_protos::temporal::api::{
        command::v1::{
            UpsertWorkflowSearchAttributesCommandAttributes, command::Attributes as Cmd,
        },
        common::v1::SearchAttributes,
        enums::v1::CommandType,
    };
    let mut d = Driver::start();
    d.limits.search_attributes_number_of_keys = 1;
    d.poll_wft();
    // The generated message's map type; built from an iterator so no hash map is named here.
    let fields = [("A", Payload::default()), ("B", Payload::default())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let upsert = temporalio_protos::temporal::api::command::v1::Command {
        command_type: CommandType::UpsertWorkflowSearchAttributes as i32,
        attributes: Some(Cmd::UpsertWorkflowSearchAttributesCommandAttributes(
            UpsertWorkflowSearchAttributesCommandAttributes {
                search_attributes: Some(SearchAttributes {
                    indexed_fields: fields,
                }),
            },
        )),
        ..Default::default()
    };
    let outcome = d.complete_wft(vec![upsert]);
    let rejected = outcome.rejected.unwrap();
    assert_eq!(rejected.cause, WorkflowTaskFailedCause::BadSearchAttributes);
    assert!(!rejected.terminate);
    assert!(
        rejected.message.contains("exceeds limit 1"),
        "{}",
        rejected.message
    );
}
