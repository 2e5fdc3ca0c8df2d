//! The node's batch worker: the system work that runs batch operations (the worker role's). It is an ordinary worker of the namespace's `temporal-sys-per-ns-tq`
//! task queue, talking to the frontend in-process, so a job is as durable as any workflow:
//!
//! - its workflow task schedules one activity, then completes the job with the activity's
//!   counts in its memo (or fails it with the activity's failure);
//! - the activity lists the targets a page at a time (the query's, or the request's list),
//!   applies the operation to each at most `max_operations_per_second` (50 when unset), and
//!   heartbeats its progress at most every few seconds; after a crash the activity's heartbeat
//!   timeout retries it from the last recorded page. Redone targets do no harm: terminating or
//!   deleting a closed or gone run is counted done, and signals and cancel requests carry a
//!   request id of the job and the run, which the run deduplicates.
//!
//! In one process that runs every role, a namespace's pollers start when a job starts in it, and
//! at start-up in every namespace with a job still running; a separate worker-role process polls
//! every namespace ([`start_everywhere`]).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use prost::Message;
use slog::{Logger, warn};
use sundial_engine::api::command::v1::{
    Command, CompleteWorkflowExecutionCommandAttributes, FailWorkflowExecutionCommandAttributes,
    ModifyWorkflowPropertiesCommandAttributes, ScheduleActivityTaskCommandAttributes, command,
};
use sundial_engine::api::common::v1::{
    ActivityType, Memo, Payloads, RetryPolicy, WorkflowExecution,
};
use sundial_engine::api::enums::v1::{CommandType, EventType, TaskQueueKind};
use sundial_engine::api::failure::v1::{ApplicationFailureInfo, Failure, failure};
use sundial_engine::api::history::v1::{HistoryEvent, history_event};
use sundial_engine::api::taskqueue::v1::TaskQueue;
use sundial_engine::api::workflowservice::v1::start_batch_operation_request::Operation;
use sundial_proto::workflowservice::workflow_service_server::WorkflowService;
use sundial_proto::workflowservice::*;
use tokio::sync::mpsc;
use tonic::{Code, Request, Status};

use crate::frontend::{BATCH_DIVISION, BATCH_TASK_QUEUE, BatchProgress, Frontend, STATS_MEMO};

const IDENTITY: &str = "temporal-sys-batcher";
/// The one activity of a job.
const ACTIVITY_TYPE: &str = "temporal-sys-batch-activity";
/// Targets per page.
const PAGE_SIZE: i32 = 100;
/// Temporal's default rate (`worker.batcherRPS`).
const DEFAULT_RATE: f32 = 50.0;
/// The activity's heartbeat timeout, and how often it heartbeats (well within it).
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(30);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// Wait after a failed poll before the next.
const POLL_RETRY: Duration = Duration::from_secs(1);
/// Failure type of a job that cannot run (retrying would not help).
const NOT_RETRYABLE: &str = "BatchOperationInvalid";

/// Starts the batch worker of `frontend`'s node; answers the frontend to serve, which tells the
/// worker where jobs start.
pub fn start(frontend: Frontend, log: Logger) -> Frontend {
    let (wake, mut woken) = mpsc::unbounded_channel::<String>();
    let frontend = frontend.with_batch_worker(wake);
    let worker = frontend.clone();
    tokio::spawn(async move {
        let mut polled = HashSet::new();
        // Namespaces with a job still running (from before a restart).
        match worker.node().namespaces.list().await {
            Ok(namespaces) => {
                for ns in namespaces {
                    if has_running_jobs(&worker, &ns.name).await {
                        poll_namespace(&worker, &log, &mut polled, ns.name);
                    }
                }
            }
            Err(e) => warn!(log, "batch worker: cannot list namespaces"; "error" => %e),
        }
        while let Some(namespace) = woken.recv().await {
            poll_namespace(&worker, &log, &mut polled, namespace);
        }
    });
    frontend
}

/// How often the worker role looks for namespaces created since it last looked.
const NAMESPACE_SCAN: Duration = Duration::from_secs(10);

/// The batch worker of a worker-role process, which hears of no job start (jobs start through
/// the frontends of other processes): it polls the batch task queue of every namespace, as
/// Temporal's worker service runs a per-namespace worker in each, and looks for new namespaces
/// every [`NAMESPACE_SCAN`]. A job started in a new namespace waits at most that long.
pub fn start_everywhere(frontend: Frontend, log: Logger) {
    tokio::spawn(async move {
        let mut polled = HashSet::new();
        let mut scans = tokio::time::interval(NAMESPACE_SCAN);
        loop {
            scans.tick().await;
            match frontend.node().namespaces.list().await {
                Ok(namespaces) => {
                    for ns in namespaces {
                        poll_namespace(&frontend, &log, &mut polled, ns.name);
                    }
                }
                Err(e) => warn!(log, "batch worker: cannot list namespaces"; "error" => %e),
            }
        }
    });
}

async fn has_running_jobs(frontend: &Frontend, namespace: &str) -> bool {
    let query =
        format!("TemporalNamespaceDivision = '{BATCH_DIVISION}' AND ExecutionStatus = 'Running'");
    let counted = frontend
        .count_workflow_executions(Request::new(CountWorkflowExecutionsRequest {
            namespace: namespace.to_string(),
            query,
        }))
        .await;
    counted.map(|c| c.into_inner().count > 0).unwrap_or(false)
}

fn poll_namespace(frontend: &Frontend, log: &Logger, polled: &mut HashSet<String>, ns: String) {
    if !polled.insert(ns.clone()) {
        return;
    }
    let log = log.new(slog::o!("namespace" => ns.clone()));
    tokio::spawn(workflow_tasks(frontend.clone(), log.clone(), ns.clone()));
    tokio::spawn(activity_tasks(frontend.clone(), log, ns));
}

fn queue() -> Option<TaskQueue> {
    Some(TaskQueue {
        name: BATCH_TASK_QUEUE.into(),
        kind: TaskQueueKind::Normal as i32,
        normal_name: String::new(),
    })
}

/// Polls with `poll` until the process ends, handing each task to `handle` (a poll that
/// answers no task, `idle`, is polled again).
async fn poll_forever<T, P, PF, H, HF>(
    log: Logger,
    what: &str,
    poll: P,
    idle: fn(&T) -> bool,
    handle: H,
) where
    P: Fn() -> PF,
    PF: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    H: Fn(T) -> HF,
    HF: std::future::Future<Output = ()>,
{
    loop {
        match poll().await {
            Ok(task) if idle(task.get_ref()) => {}
            Ok(task) => handle(task.into_inner()).await,
            Err(e) => {
                warn!(log, "batch worker: poll failed"; "tasks" => what, "error" => %e);
                tokio::time::sleep(POLL_RETRY).await;
            }
        }
    }
}

async fn workflow_tasks(frontend: Frontend, log: Logger, namespace: String) {
    let poll = || {
        frontend.poll_workflow_task_queue(Request::new(PollWorkflowTaskQueueRequest {
            namespace: namespace.clone(),
            task_queue: queue(),
            identity: IDENTITY.into(),
            ..Default::default()
        }))
    };
    let handle = |task: PollWorkflowTaskQueueResponse| async {
        if let Err(e) = decide(&frontend, &namespace, task).await {
            warn!(log, "batch worker: workflow task failed"; "error" => %e);
        }
    };
    let idle = |t: &PollWorkflowTaskQueueResponse| t.task_token.is_empty();
    poll_forever(log.clone(), "workflow", poll, idle, handle).await;
}

/// Answers a job's workflow task from its whole history (a handful of events).
async fn decide(
    frontend: &Frontend,
    namespace: &str,
    task: PollWorkflowTaskQueueResponse,
) -> Result<(), Status> {
    let mut events = task.history.map(|h| h.events).unwrap_or_default();
    let mut token = task.next_page_token;
    while !token.is_empty() {
        let page = frontend
            .get_workflow_execution_history(Request::new(GetWorkflowExecutionHistoryRequest {
                namespace: namespace.to_string(),
                execution: task.workflow_execution.clone(),
                next_page_token: token,
                ..Default::default()
            }))
            .await?
            .into_inner();
        events.extend(page.history.map(|h| h.events).unwrap_or_default());
        token = page.next_page_token;
    }
    let commands = commands_for(&events);
    frontend
        .respond_workflow_task_completed(Request::new(RespondWorkflowTaskCompletedRequest {
            task_token: task.task_token,
            commands,
            identity: IDENTITY.into(),
            namespace: namespace.to_string(),
            ..Default::default()
        }))
        .await?;
    Ok(())
}

/// What a job does next, from its history.
fn commands_for(events: &[HistoryEvent]) -> Vec<Command> {
    use history_event::Attributes;
    let input = events.iter().find_map(|e| match &e.attributes {
        Some(Attributes::WorkflowExecutionStartedEventAttributes(a)) => a.input.clone(),
        _ => None,
    });
    for event in events.iter().rev() {
        match &event.attributes {
            Some(Attributes::ActivityTaskCompletedEventAttributes(a)) => {
                let stats = a
                    .result
                    .as_ref()
                    .and_then(|r| r.payloads.first().cloned())
                    .unwrap_or_default();
                let memo = Memo {
                    fields: [(STATS_MEMO.to_string(), stats)].into(),
                };
                return vec![
                    Command {
                        command_type: CommandType::ModifyWorkflowProperties as i32,
                        attributes: Some(
                            command::Attributes::ModifyWorkflowPropertiesCommandAttributes(
                                ModifyWorkflowPropertiesCommandAttributes {
                                    upserted_memo: Some(memo),
                                },
                            ),
                        ),
                        ..Default::default()
                    },
                    Command {
                        command_type: CommandType::CompleteWorkflowExecution as i32,
                        attributes: Some(
                            command::Attributes::CompleteWorkflowExecutionCommandAttributes(
                                CompleteWorkflowExecutionCommandAttributes {
                                    result: a.result.clone(),
                                },
                            ),
                        ),
                        ..Default::default()
                    },
                ];
            }
            Some(Attributes::ActivityTaskFailedEventAttributes(a)) => {
                return vec![fail(a.failure.clone())];
            }
            Some(Attributes::ActivityTaskTimedOutEventAttributes(a)) => {
                return vec![fail(a.failure.clone())];
            }
            _ => {}
        }
    }
    let scheduled = events
        .iter()
        .any(|e| e.event_type == EventType::ActivityTaskScheduled as i32);
    if scheduled {
        return Vec::new();
    }
    vec![Command {
        command_type: CommandType::ScheduleActivityTask as i32,
        attributes: Some(command::Attributes::ScheduleActivityTaskCommandAttributes(
            ScheduleActivityTaskCommandAttributes {
                activity_id: "batch".into(),
                activity_type: Some(ActivityType {
                    name: ACTIVITY_TYPE.into(),
                }),
                task_queue: queue(),
                input,
                start_to_close_timeout: Some(prost_wkt_types::Duration {
                    seconds: 365 * 86_400,
                    nanos: 0,
                }),
                heartbeat_timeout: Some(prost_wkt_types::Duration {
                    seconds: HEARTBEAT_TIMEOUT.as_secs() as i64,
                    nanos: 0,
                }),
                retry_policy: Some(RetryPolicy {
                    initial_interval: Some(prost_wkt_types::Duration {
                        seconds: 1,
                        nanos: 0,
                    }),
                    backoff_coefficient: 2.0,
                    maximum_interval: Some(prost_wkt_types::Duration {
                        seconds: 60,
                        nanos: 0,
                    }),
                    maximum_attempts: 0,
                    non_retryable_error_types: vec![NOT_RETRYABLE.into()],
                }),
                ..Default::default()
            },
        )),
        ..Default::default()
    }]
}

fn fail(failure: Option<Failure>) -> Command {
    Command {
        command_type: CommandType::FailWorkflowExecution as i32,
        attributes: Some(command::Attributes::FailWorkflowExecutionCommandAttributes(
            FailWorkflowExecutionCommandAttributes { failure },
        )),
        ..Default::default()
    }
}

async fn activity_tasks(frontend: Frontend, log: Logger, namespace: String) {
    let poll = || {
        frontend.poll_activity_task_queue(Request::new(PollActivityTaskQueueRequest {
            namespace: namespace.clone(),
            task_queue: queue(),
            identity: IDENTITY.into(),
            ..Default::default()
        }))
    };
    let handle = |task: PollActivityTaskQueueResponse| {
        // Jobs run side by side.
        let (frontend, log, namespace) = (frontend.clone(), log.clone(), namespace.clone());
        async move {
            tokio::spawn(async move {
                if let Err(e) = run_job(&frontend, &namespace, task).await {
                    warn!(log, "batch worker: job activity failed"; "error" => %e);
                }
            });
        }
    };
    let idle = |t: &PollActivityTaskQueueResponse| t.task_token.is_empty();
    poll_forever(log.clone(), "activity", poll, idle, handle).await;
}

/// How a job's activity ended.
enum Ended {
    Done(BatchProgress),
    /// The job was stopped (its workflow terminated): nothing to report.
    Stopped,
    Invalid(String),
}

async fn run_job(
    frontend: &Frontend,
    namespace: &str,
    task: PollActivityTaskQueueResponse,
) -> Result<(), Status> {
    let token = task.task_token.clone();
    let ended = match decode_request(&task) {
        Ok(request) => {
            let progress = BatchProgress::from_payload(
                task.heartbeat_details
                    .as_ref()
                    .and_then(|d| d.payloads.first()),
            );
            let job = Job {
                request: &request,
                started: task.scheduled_time,
            };
            work(frontend, namespace, &token, &job, progress).await?
        }
        Err(why) => Ended::Invalid(why),
    };
    let payloads = |progress: &BatchProgress| {
        Some(Payloads {
            payloads: vec![progress.to_payload()],
        })
    };
    match ended {
        Ended::Stopped => Ok(()),
        Ended::Done(progress) => frontend
            .respond_activity_task_completed(Request::new(RespondActivityTaskCompletedRequest {
                task_token: token,
                result: payloads(&progress),
                identity: IDENTITY.into(),
                namespace: namespace.to_string(),
                ..Default::default()
            }))
            .await
            .map(drop),
        Ended::Invalid(message) => frontend
            .respond_activity_task_failed(Request::new(RespondActivityTaskFailedRequest {
                task_token: token,
                failure: Some(Failure {
                    message,
                    failure_info: Some(failure::FailureInfo::ApplicationFailureInfo(
                        ApplicationFailureInfo {
                            r#type: NOT_RETRYABLE.into(),
                            non_retryable: true,
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }),
                identity: IDENTITY.into(),
                namespace: namespace.to_string(),
                ..Default::default()
            }))
            .await
            .map(drop),
    }
}

fn decode_request(
    task: &PollActivityTaskQueueResponse,
) -> Result<StartBatchOperationRequest, String> {
    let payload = task
        .input
        .as_ref()
        .and_then(|i| i.payloads.first())
        .ok_or("the job has no input")?;
    StartBatchOperationRequest::decode(payload.data.as_slice())
        .map_err(|e| format!("the job's input is not a StartBatchOperationRequest: {e}"))
}

/// A job's request, and when its activity was first scheduled (about when the job started).
struct Job<'a> {
    request: &'a StartBatchOperationRequest,
    started: Option<prost_wkt_types::Timestamp>,
}

/// A target of a job.
struct Target {
    workflow_id: String,
    run_id: String,
}

/// Applies the job's operation to its targets from `progress` on.
async fn work(
    frontend: &Frontend,
    namespace: &str,
    token: &[u8],
    job: &Job<'_>,
    mut progress: BatchProgress,
) -> Result<Ended, Status> {
    let request = job.request;
    let Some(operation) = request.operation.as_ref() else {
        return Ok(Ended::Invalid("the job has no operation".into()));
    };
    #[allow(deprecated)]
    let listed: Vec<Target> = request
        .executions
        .iter()
        .map(|e| Target {
            workflow_id: e.workflow_id.clone(),
            run_id: e.run_id.clone(),
        })
        .chain(request.target_executions.iter().map(|e| Target {
            workflow_id: e.business_id.clone(),
            run_id: e.run_id.clone(),
        }))
        .collect();
    let by_query = listed.is_empty();
    if progress.total_estimate == 0 {
        progress.total_estimate = if by_query {
            let counted = frontend
                .count_workflow_executions(Request::new(CountWorkflowExecutionsRequest {
                    namespace: namespace.to_string(),
                    query: request.visibility_query.clone(),
                }))
                .await;
            match counted {
                Ok(counted) => counted.into_inner().count,
                Err(e) if e.code() == Code::InvalidArgument => {
                    return Ok(Ended::Invalid(e.message().to_string()));
                }
                Err(e) => return Err(e),
            }
        } else {
            listed.len() as i64
        };
    }
    let rate = if request.max_operations_per_second > 0.0 {
        request.max_operations_per_second
    } else {
        DEFAULT_RATE
    };
    let mut pace = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heartbeat = Instant::now();
    loop {
        // The page, and where the next starts.
        let (page, next_token): (Vec<Target>, Option<Vec<u8>>) = if by_query {
            let answer = frontend
                .list_workflow_executions(Request::new(ListWorkflowExecutionsRequest {
                    namespace: namespace.to_string(),
                    page_size: PAGE_SIZE,
                    next_page_token: progress.page_token.clone(),
                    query: request.visibility_query.clone(),
                }))
                .await;
            let answer = match answer {
                Ok(answer) => answer.into_inner(),
                Err(e) if e.code() == Code::InvalidArgument => {
                    return Ok(Ended::Invalid(e.message().to_string()));
                }
                Err(e) => return Err(e),
            };
            let page = answer
                .executions
                .into_iter()
                .filter_map(|e| e.execution)
                .map(|e| Target {
                    workflow_id: e.workflow_id,
                    run_id: e.run_id,
                })
                .collect();
            let next = (!answer.next_page_token.is_empty()).then_some(answer.next_page_token);
            (page, next)
        } else {
            let from = progress.next_execution.min(listed.len());
            let to = (from + PAGE_SIZE as usize).min(listed.len());
            let page = listed[from..to]
                .iter()
                .map(|t| Target {
                    workflow_id: t.workflow_id.clone(),
                    run_id: t.run_id.clone(),
                })
                .collect();
            (page, (to < listed.len()).then(Vec::new))
        };
        let page_len = page.len();
        for target in page {
            pace.tick().await;
            match apply(frontend, namespace, job, operation, &target).await {
                Ok(()) => progress.succeeded += 1,
                Err(_) => progress.failed += 1,
            }
            if last_heartbeat.elapsed() >= HEARTBEAT_EVERY {
                if !heartbeat(frontend, namespace, token, &progress).await? {
                    return Ok(Ended::Stopped);
                }
                last_heartbeat = Instant::now();
            }
        }
        // The page is done: the next starts after it.
        match next_token {
            Some(next) if page_len > 0 => {
                if by_query {
                    progress.page_token = next;
                } else {
                    progress.next_execution += page_len;
                }
                if !heartbeat(frontend, namespace, token, &progress).await? {
                    return Ok(Ended::Stopped);
                }
                last_heartbeat = Instant::now();
            }
            _ => return Ok(Ended::Done(progress)),
        }
    }
}

/// Records progress; `false` once the job is stopped (its activity is gone or cancelled).
async fn heartbeat(
    frontend: &Frontend,
    namespace: &str,
    token: &[u8],
    progress: &BatchProgress,
) -> Result<bool, Status> {
    let answer = frontend
        .record_activity_task_heartbeat(Request::new(RecordActivityTaskHeartbeatRequest {
            task_token: token.to_vec(),
            details: Some(Payloads {
                payloads: vec![progress.to_payload()],
            }),
            identity: IDENTITY.into(),
            namespace: namespace.to_string(),
            ..Default::default()
        }))
        .await;
    match answer {
        Ok(answer) => Ok(!answer.into_inner().cancel_requested),
        Err(e) if e.code() == Code::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Applies the operation to one run. A run already closed (or gone) is what terminating or
/// deleting it asks for, so it counts as done.
async fn apply(
    frontend: &Frontend,
    namespace: &str,
    job: &Job<'_>,
    operation: &Operation,
    target: &Target,
) -> Result<(), Status> {
    let request = job.request;
    let execution = Some(WorkflowExecution {
        workflow_id: target.workflow_id.clone(),
        run_id: target.run_id.clone(),
    });
    // The same for every attempt at this run by this job, so the run deduplicates it.
    let request_id = format!(
        "{}:{}:{}",
        request.job_id, target.workflow_id, target.run_id
    );
    let answer = match operation {
        Operation::TerminationOperation(op) => frontend
            .terminate_workflow_execution(Request::new(TerminateWorkflowExecutionRequest {
                namespace: namespace.to_string(),
                workflow_execution: execution,
                reason: request.reason.clone(),
                details: op.details.clone(),
                identity: op.identity.clone(),
                ..Default::default()
            }))
            .await
            .map(drop),
        Operation::CancellationOperation(op) => frontend
            .request_cancel_workflow_execution(Request::new(
                RequestCancelWorkflowExecutionRequest {
                    namespace: namespace.to_string(),
                    workflow_execution: execution,
                    identity: op.identity.clone(),
                    request_id,
                    reason: request.reason.clone(),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        Operation::SignalOperation(op) => frontend
            .signal_workflow_execution(Request::new(SignalWorkflowExecutionRequest {
                namespace: namespace.to_string(),
                workflow_execution: execution,
                signal_name: op.signal.clone(),
                input: op.input.clone(),
                identity: op.identity.clone(),
                request_id,
                header: op.header.clone(),
                ..Default::default()
            }))
            .await
            .map(drop),
        Operation::ResetOperation(op) => reset(frontend, namespace, job, op, target).await,
        Operation::DeletionOperation(_) => frontend
            .delete_workflow_execution(Request::new(DeleteWorkflowExecutionRequest {
                namespace: namespace.to_string(),
                workflow_execution: execution,
            }))
            .await
            .map(drop),
        _ => Err(Status::unimplemented("not a batch operation Sundial runs")),
    };
    match answer {
        Err(e)
            if e.code() == Code::NotFound
                && matches!(
                    operation,
                    Operation::TerminationOperation(_) | Operation::DeletionOperation(_)
                ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Resets one run to the workflow task the operation names, unless this job has reset it
/// already (a redone page after a crash): its `reset_run_id` names a run reset since the job
/// started. Temporal does not deduplicate resets by request id, so the job must.
#[allow(deprecated)] // the reapply type: older clients still send it, as Temporal's batcher does
async fn reset(
    frontend: &Frontend,
    namespace: &str,
    job: &Job<'_>,
    op: &sundial_engine::api::batch::v1::BatchOperationReset,
    target: &Target,
) -> Result<(), Status> {
    use sundial_engine::api::common::v1::reset_options::Target as ResetTarget;
    use sundial_engine::api::enums::v1::ResetType;
    let describe = |workflow_id: String, run_id: String| async move {
        frontend
            .describe_workflow_execution(Request::new(DescribeWorkflowExecutionRequest {
                namespace: namespace.to_string(),
                execution: Some(WorkflowExecution {
                    workflow_id,
                    run_id,
                }),
            }))
            .await
            .map(|d| d.into_inner())
    };
    let described = describe(target.workflow_id.clone(), target.run_id.clone()).await?;
    let run_id = described
        .workflow_execution_info
        .as_ref()
        .and_then(|i| i.execution.as_ref())
        .map(|e| e.run_id.clone())
        .unwrap_or_else(|| target.run_id.clone());
    let reset_run = described
        .workflow_extended_info
        .as_ref()
        .map(|x| x.reset_run_id.clone())
        .unwrap_or_default();
    if !reset_run.is_empty() {
        let later = describe(target.workflow_id.clone(), reset_run).await?;
        let reset_at = later
            .workflow_extended_info
            .and_then(|x| x.last_reset_time)
            .map(|t| (t.seconds, t.nanos));
        let started = job.started.as_ref().map(|t| (t.seconds, t.nanos));
        if reset_at.is_some() && reset_at >= started {
            return Ok(());
        }
    }
    let (first, reapply_type, exclude) = match &op.options {
        Some(options) => {
            let first = match options.target {
                Some(ResetTarget::FirstWorkflowTask(())) => Some(true),
                Some(ResetTarget::LastWorkflowTask(())) => Some(false),
                _ => None,
            };
            let event_id = match options.target {
                Some(ResetTarget::WorkflowTaskId(id)) => Some(id),
                _ => None,
            };
            (
                first.ok_or(event_id),
                options.reset_reapply_type,
                options.reset_reapply_exclude_types.clone(),
            )
        }
        None => (
            Ok(op.reset_type == ResetType::FirstWorkflowTask as i32),
            op.reset_reapply_type,
            Vec::new(),
        ),
    };
    let event_id = match first {
        Ok(first) => {
            workflow_task_event(frontend, namespace, &target.workflow_id, &run_id, first).await?
        }
        Err(Some(id)) => id,
        Err(None) => {
            return Err(Status::invalid_argument(
                "provided reset target is not supported",
            ));
        }
    };
    frontend
        .reset_workflow_execution(Request::new(ResetWorkflowExecutionRequest {
            namespace: namespace.to_string(),
            workflow_execution: Some(WorkflowExecution {
                workflow_id: target.workflow_id.clone(),
                run_id,
            }),
            reason: job.request.reason.clone(),
            workflow_task_finish_event_id: event_id,
            request_id: uuid::Uuid::new_v4().to_string(),
            reset_reapply_type: reapply_type,
            reset_reapply_exclude_types: exclude,
            post_reset_operations: op.post_reset_operations.clone(),
            identity: op.identity.clone(),
        }))
        .await
        .map(drop)
}

/// The event a reset to a run's first (or last) workflow task finishes at, as Temporal's
/// batcher finds it: that task's completed event, or for a run with none, the event after its
/// first scheduled task.
async fn workflow_task_event(
    frontend: &Frontend,
    namespace: &str,
    workflow_id: &str,
    run_id: &str,
    first: bool,
) -> Result<i64, Status> {
    let mut found = None;
    let mut fallback = None;
    let mut token = Vec::new();
    loop {
        let page = frontend
            .get_workflow_execution_history(Request::new(GetWorkflowExecutionHistoryRequest {
                namespace: namespace.to_string(),
                execution: Some(WorkflowExecution {
                    workflow_id: workflow_id.to_string(),
                    run_id: run_id.to_string(),
                }),
                next_page_token: token,
                ..Default::default()
            }))
            .await?
            .into_inner();
        for event in page.history.map(|h| h.events).unwrap_or_default() {
            if event.event_type == EventType::WorkflowTaskCompleted as i32 {
                found = Some(event.event_id);
                if first {
                    return Ok(event.event_id);
                }
            } else if event.event_type == EventType::WorkflowTaskScheduled as i32 {
                fallback = fallback.or(Some(event.event_id + 1));
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    found
        .or(fallback)
        .ok_or_else(|| Status::invalid_argument("unable to find any scheduled or completed task"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_engine::api::history::v1::{
        ActivityTaskCompletedEventAttributes, WorkflowExecutionStartedEventAttributes,
    };

    fn event(event_type: EventType, attributes: Option<history_event::Attributes>) -> HistoryEvent {
        HistoryEvent {
            event_type: event_type as i32,
            attributes,
            ..Default::default()
        }
    }

    #[test]
    fn a_job_schedules_its_activity_once_then_completes_with_its_counts() {
        let started = event(
            EventType::WorkflowExecutionStarted,
            Some(
                history_event::Attributes::WorkflowExecutionStartedEventAttributes(
                    WorkflowExecutionStartedEventAttributes::default(),
                ),
            ),
        );
        let first = commands_for(std::slice::from_ref(&started));
        assert_eq!(first.len(), 1);
        assert_eq!(
            first[0].command_type,
            CommandType::ScheduleActivityTask as i32
        );

        let scheduled = event(EventType::ActivityTaskScheduled, None);
        assert!(commands_for(&[started.clone(), scheduled.clone()]).is_empty());

        let stats = BatchProgress {
            succeeded: 3,
            failed: 1,
            ..Default::default()
        };
        let completed = event(
            EventType::ActivityTaskCompleted,
            Some(
                history_event::Attributes::ActivityTaskCompletedEventAttributes(
                    ActivityTaskCompletedEventAttributes {
                        result: Some(Payloads {
                            payloads: vec![stats.to_payload()],
                        }),
                        ..Default::default()
                    },
                ),
            ),
        );
        let last = commands_for(&[started, scheduled, completed]);
        let types: Vec<i32> = last.iter().map(|c| c.command_type).collect();
        assert_eq!(
            types,
            [
                CommandType::ModifyWorkflowProperties as i32,
                CommandType::CompleteWorkflowExecution as i32
            ]
        );
        let Some(command::Attributes::ModifyWorkflowPropertiesCommandAttributes(memo)) =
            &last[0].attributes
        else {
            panic!("a memo upsert");
        };
        let recorded = memo.upserted_memo.as_ref().unwrap().fields.get(STATS_MEMO);
        assert_eq!(BatchProgress::from_payload(recorded), stats);
    }

    #[test]
    fn progress_round_trips_through_its_payload() {
        let progress = BatchProgress {
            page_token: vec![1, 0, 255],
            next_execution: 7,
            total_estimate: 12,
            succeeded: 5,
            failed: 2,
        };
        assert_eq!(
            BatchProgress::from_payload(Some(&progress.to_payload())),
            progress
        );
        assert_eq!(BatchProgress::from_payload(None), BatchProgress::default());
    }
}
