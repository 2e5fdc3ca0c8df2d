//! Durations, lengths and sizes from clients and workers are range-checked with Temporal's
//! messages (each checked against the reference server): out of range is InvalidArgument (or
//! a failed workflow task / activity where Temporal does that), a huge duration is capped to
//! 100 years, and nothing panics.

use anyhow::Result;
use prost_wkt_types::Duration;
use sundial_proto::api::common::v1::{Header, Payload};
use sundial_proto::api::enums::v1::{EventType, WorkflowTaskFailedCause};
use sundial_proto::api::failure::v1::failure::FailureInfo;
use sundial_proto::api::history::v1::history_event;
use sundial_proto::workflowservice::*;
use sundial_tests::worker::{NAMESPACE, commands, execution, payloads, rpc, secs, task_queue};
use sundial_tests::{TestServer, Worker};
use tonic::Code;

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
/// Temporal's cap: 100 years of 365 days.
const MAX_SECONDS: i64 = 100 * 365 * 24 * 3600;

fn too_long() -> String {
    "x".repeat(1001)
}

fn assert_invalid(status: &tonic::Status, message: &str) {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
}

/// Completes the pending workflow task `task` of the worker's workflow by scheduling activity
/// "a" on the worker's queue, and polls that activity.
async fn schedule_and_poll_activity(
    worker: &mut Worker,
    task: PollWorkflowTaskQueueResponse,
) -> Result<PollActivityTaskQueueResponse> {
    let schedule = commands::schedule_activity("a", &worker.task_queue, secs(60));
    worker
        .complete_workflow_task(task.task_token, vec![schedule])
        .await?;
    worker.poll_activity_task().await
}

/// The attributes of the first event of `history` that `pick` accepts.
fn first<T: Clone>(
    history: &[sundial_proto::api::history::v1::HistoryEvent],
    pick: impl Fn(&history_event::Attributes) -> Option<&T>,
) -> T {
    history
        .iter()
        .find_map(|e| e.attributes.as_ref().and_then(&pick))
        .cloned()
        .expect("the event is in the history")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_durations_are_checked_and_capped() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let mut client = worker.client.clone();
    type Field = fn(&mut StartWorkflowExecutionRequest) -> &mut Option<Duration>;
    let fields: [(Field, &str); 4] = [
        (
            |r| &mut r.workflow_execution_timeout,
            "WorkflowExecutionTimeoutSeconds",
        ),
        (|r| &mut r.workflow_run_timeout, "WorkflowRunTimeoutSeconds"),
        (
            |r| &mut r.workflow_task_timeout,
            "WorkflowTaskTimeoutSeconds",
        ),
        (|r| &mut r.workflow_start_delay, "WorkflowStartDelaySeconds"),
    ];
    for (i, (field, name)) in fields.iter().enumerate() {
        for (bad, why) in [
            (NEGATIVE, "negative duration"),
            (
                MISMATCHED,
                "duration has seconds and nanos with different signs",
            ),
        ] {
            let mut req = worker.start_request(&format!("bad-{i}"));
            *field(&mut req) = Some(bad);
            let status = client.start_workflow_execution(rpc(req)).await.unwrap_err();
            assert_invalid(
                &status,
                &format!("An invalid {name} is set on request. cause: {why}"),
            );
        }
        // A huge duration is capped, and the server lives on.
        let id = format!("huge-{i}");
        let mut req = worker.start_request(&id);
        *field(&mut req) = Some(HUGE);
        client.start_workflow_execution(rpc(req)).await?;
        let described = worker.describe(&id).await?;
        let config = described.execution_config.unwrap();
        let kept = match i {
            0 => config.workflow_execution_timeout,
            1 => config.workflow_run_timeout,
            2 => config.default_workflow_task_timeout,
            _ => None,
        };
        if i < 2 {
            assert_eq!(kept.map(|d| d.seconds), Some(MAX_SECONDS), "{name}");
        }
    }
    let mut req = worker.start_request("bad-retry");
    req.retry_policy = Some(sundial_proto::api::common::v1::RetryPolicy {
        initial_interval: Some(NEGATIVE),
        ..Default::default()
    });
    let status = client.start_workflow_execution(rpc(req)).await.unwrap_err();
    assert_invalid(
        &status,
        "invalid InitialInterval set on retry policy: negative duration",
    );
    worker.start("still-serving").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_timer_durations_fail_the_workflow_task() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    worker.start("timer").await?;
    let task = worker.poll_workflow_task().await?;
    let status = worker
        .complete_workflow_task(task.task_token, vec![commands::start_timer("t1", NEGATIVE)])
        .await
        .unwrap_err()
        .downcast::<tonic::Status>()?;
    let message = "BadStartTimerAttributes: An invalid StartToFireTimeout is set on StartTimerCommand: negative duration. TimerId=t1";
    assert_invalid(&status, message);
    let history = worker.history("timer").await?;
    let failed = first(&history, |a| match a {
        history_event::Attributes::WorkflowTaskFailedEventAttributes(a) => Some(a),
        _ => None,
    });
    assert_eq!(
        failed.cause,
        WorkflowTaskFailedCause::BadStartTimerAttributes as i32
    );
    assert_eq!(failed.failure.as_ref().unwrap().message, message);

    // The retried task starts a huge timer: capped to 100 years.
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, vec![commands::start_timer("t1", HUGE)])
        .await?;
    let history = worker.history("timer").await?;
    let started = first(&history, |a| match a {
        history_event::Attributes::TimerStartedEventAttributes(a) => Some(a),
        _ => None,
    });
    assert_eq!(
        started.start_to_fire_timeout.as_ref().map(|d| d.seconds),
        Some(MAX_SECONDS)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identities_and_request_ids_are_length_checked() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let mut client = worker.client.clone();
    for kind in ["workflow", "activity"] {
        let status = if kind == "workflow" {
            let req = PollWorkflowTaskQueueRequest {
                namespace: NAMESPACE.into(),
                task_queue: Some(task_queue("q")),
                identity: too_long(),
                ..Default::default()
            };
            client.poll_workflow_task_queue(rpc(req)).await.unwrap_err()
        } else {
            let req = PollActivityTaskQueueRequest {
                namespace: NAMESPACE.into(),
                task_queue: Some(task_queue("q")),
                identity: too_long(),
                ..Default::default()
            };
            client.poll_activity_task_queue(rpc(req)).await.unwrap_err()
        };
        assert_invalid(&status, "Identity length exceeds limit.");
    }
    let mut req = worker.start_request("long-request-id");
    req.request_id = too_long();
    let status = client.start_workflow_execution(rpc(req)).await.unwrap_err();
    assert_invalid(&status, "RequestId length exceeds limit.");
    worker.start("wf").await?;
    let req = SignalWorkflowExecutionRequest {
        namespace: NAMESPACE.into(),
        workflow_execution: Some(execution("wf", "")),
        signal_name: "s".into(),
        request_id: too_long(),
        ..Default::default()
    };
    let status = client
        .signal_workflow_execution(rpc(req))
        .await
        .unwrap_err();
    assert_invalid(&status, "RequestId length exceeds limit.");

    // A workflow task's and an activity task's responses check the identity; a heartbeat
    // does not (as Temporal).
    let task = worker.poll_workflow_task().await?;
    let req = RespondWorkflowTaskCompletedRequest {
        task_token: task.task_token.clone(),
        namespace: NAMESPACE.into(),
        identity: too_long(),
        commands: vec![commands::schedule_activity(
            "a",
            &worker.task_queue,
            secs(60),
        )],
        ..Default::default()
    };
    let status = client
        .respond_workflow_task_completed(rpc(req))
        .await
        .unwrap_err();
    assert_invalid(&status, "Identity length exceeds limit.");
    let activity = schedule_and_poll_activity(&mut worker, task).await?;
    let req = RecordActivityTaskHeartbeatRequest {
        task_token: activity.task_token.clone(),
        namespace: NAMESPACE.into(),
        identity: too_long(),
        ..Default::default()
    };
    client.record_activity_task_heartbeat(rpc(req)).await?;
    let req = RespondActivityTaskCompletedRequest {
        task_token: activity.task_token,
        namespace: NAMESPACE.into(),
        identity: too_long(),
        ..Default::default()
    };
    let status = client
        .respond_activity_task_completed(rpc(req))
        .await
        .unwrap_err();
    assert_invalid(&status, "Identity length exceeds limit.");
    Ok(())
}

/// An oversized heartbeat fails the activity at once, without retries, with Temporal's
/// non-retryable server failure; the worker is told to stop (cancel requested).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heartbeat_details_fail_the_activity() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let mut client = worker.client.clone();
    worker.start("hb").await?;
    let task = worker.poll_workflow_task().await?;
    let activity = schedule_and_poll_activity(&mut worker, task).await?;
    let req = RecordActivityTaskHeartbeatRequest {
        task_token: activity.task_token,
        namespace: NAMESPACE.into(),
        details: Some(payloads(&vec![b'x'; 2 * 1024 * 1024 + 10])),
        ..Default::default()
    };
    let response = client.record_activity_task_heartbeat(rpc(req)).await?;
    assert!(response.into_inner().cancel_requested);
    let history = worker.history("hb").await?;
    let types: Vec<EventType> = sundial_tests::worker::event_types(&history);
    assert_eq!(
        types[5..],
        [
            EventType::ActivityTaskStarted,
            EventType::ActivityTaskFailed,
            EventType::WorkflowTaskScheduled
        ]
    );
    let failure = first(&history, |a| match a {
        history_event::Attributes::ActivityTaskFailedEventAttributes(a) => a.failure.as_ref(),
        _ => None,
    });
    assert_eq!(failure.message, "Heartbeat details exceed size limit.");
    assert!(matches!(
        failure.failure_info,
        Some(FailureInfo::ServerFailureInfo(ref i)) if i.non_retryable
    ));
    Ok(())
}

/// Requests over 4 MiB (gRPC's default limit, which Temporal's frontend keeps) are refused:
/// the limit that bounds headers, which Temporal does not check on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_over_four_mib_are_refused() -> Result<()> {
    let server = TestServer::memory().await?;
    let worker = Worker::new(server.client().await?);
    let mut client = worker.client.clone();
    let mut req = worker.start_request("big-header");
    req.header = Some(Header {
        fields: [(
            "h".to_string(),
            Payload {
                data: vec![b'x'; 5 * 1024 * 1024],
                ..Default::default()
            },
        )]
        .into(),
    });
    let status = client.start_workflow_execution(rpc(req)).await.unwrap_err();
    assert_ne!(status.code(), Code::Ok);
    assert!(status.message().contains("too large"), "{status:?}");
    // A header within the limit is kept.
    let mut req = worker.start_request("header");
    req.header = Some(Header {
        fields: [(
            "h".to_string(),
            Payload {
                data: vec![b'x'; 1024],
                ..Default::default()
            },
        )]
        .into(),
    });
    client.start_workflow_execution(rpc(req)).await?;
    Ok(())
}

/// Query arguments over `limit.blobSize.error` are refused, as Temporal's frontend does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_query_args_are_refused() -> Result<()> {
    let server = TestServer::memory().await?;
    let mut worker = Worker::new(server.client().await?);
    let mut client = worker.client.clone();
    worker.start("q").await?;
    let req = QueryWorkflowRequest {
        namespace: NAMESPACE.into(),
        execution: Some(execution("q", "")),
        query: Some(sundial_proto::api::query::v1::WorkflowQuery {
            query_type: "state".into(),
            query_args: Some(payloads(&vec![b'x'; 2 * 1024 * 1024 + 10])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let status = client.query_workflow(rpc(req)).await.unwrap_err();
    assert_invalid(&status, "Blob data size exceeds limit.");
    Ok(())
}
