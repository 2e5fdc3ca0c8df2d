//! Observability: a `sundial server start-dev --metrics-port` process runs workflows to every
//! outcome through the raw-client worker; its Prometheus scrape must carry Temporal's names,
//! tags and exact counts, DescribeTaskQueue must report the exact backlog, and the Grafana
//! dashboard may only query metrics the server emits.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sundial_proto::api::command::v1::{
    Command, ContinueAsNewWorkflowExecutionCommandAttributes,
    FailWorkflowExecutionCommandAttributes, command::Attributes,
};
use sundial_proto::api::common::v1::WorkflowType;
use sundial_proto::api::enums::v1::{CommandType, DescribeTaskQueueMode, TaskQueueType};
use sundial_proto::api::failure::v1::Failure;
use sundial_proto::workflowservice::*;
use sundial_tests::process::{SundialProcess, free_port, workspace_root};
use sundial_tests::scrape::{Scrape, promql_metrics, scrape};
use sundial_tests::worker::{Worker, commands, execution, rpc, secs, task_queue};

/// A start-dev process serving metrics; returns it, its worker and the metrics address.
async fn server_with_metrics(
    dir: &tempfile::TempDir,
) -> Result<(SundialProcess, Worker, SocketAddr)> {
    let (port, metrics_port) = (free_port()?, free_port()?);
    let (port_arg, metrics_arg) = (port.to_string(), metrics_port.to_string());
    let db = dir.path().join("metrics.db");
    let args = [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        &port_arg,
        "--metrics-port",
        &metrics_arg,
        "--db-filename",
        db.to_str().context("temp path is UTF-8")?,
    ];
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut process = SundialProcess::spawn(&args, addr, &dir.path().join("sundial.log"))?;
    let client = process.wait_ready().await?;
    Ok((
        process,
        Worker::new(client),
        SocketAddr::from(([127, 0, 0, 1], metrics_port)),
    ))
}

fn fail_workflow() -> Command {
    Command {
        command_type: CommandType::FailWorkflowExecution as i32,
        attributes: Some(Attributes::FailWorkflowExecutionCommandAttributes(
            FailWorkflowExecutionCommandAttributes {
                failure: Some(Failure {
                    message: "failed on purpose".into(),
                    ..Default::default()
                }),
            },
        )),
        ..Default::default()
    }
}

fn continue_as_new(queue: &str) -> Command {
    Command {
        command_type: CommandType::ContinueAsNewWorkflowExecution as i32,
        attributes: Some(Attributes::ContinueAsNewWorkflowExecutionCommandAttributes(
            ContinueAsNewWorkflowExecutionCommandAttributes {
                workflow_type: Some(WorkflowType {
                    name: "test-workflow".into(),
                }),
                task_queue: Some(task_queue(queue)),
                workflow_task_timeout: Some(secs(10)),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// How many runs of each outcome [`run_workflows`] produces.
const SUCCEEDED: usize = 3;

/// Runs workflows to every outcome: 3 completed, 1 failed, 1 timed out, 1 terminated,
/// 1 canceled, 1 continued as new (whose next run completes: counted in the 3), plus one
/// duplicate start refused as already started.
async fn run_workflows(worker: &mut Worker) -> Result<()> {
    let queue = worker.task_queue.clone();
    // Two plain completions, and a continue-as-new whose new run completes.
    for wf in ["ok-1", "ok-2", "again"] {
        worker.start(wf).await?;
    }
    for _ in 0..3 {
        let task = worker.poll_workflow_task().await?;
        let wf = task
            .workflow_execution
            .clone()
            .unwrap_or_default()
            .workflow_id;
        let command = if wf == "again" {
            continue_as_new(&queue)
        } else {
            commands::complete_workflow(b"done")
        };
        worker
            .complete_workflow_task(task.task_token, vec![command])
            .await?;
    }
    let task = worker.poll_workflow_task().await?;
    ensure!(task.workflow_execution.unwrap_or_default().workflow_id == "again");
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"done")])
        .await?;
    // A duplicate start: WorkflowExecutionAlreadyStarted (an expected error).
    let mut duplicate = worker.start_request("ok-1");
    duplicate.workflow_id_reuse_policy =
        sundial_proto::api::enums::v1::WorkflowIdReusePolicy::RejectDuplicate as i32;
    let refused = worker.client.start_workflow_execution(rpc(duplicate)).await;
    ensure!(refused.is_err(), "a duplicate start must be refused");
    // Failed.
    worker.start("fails").await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, vec![fail_workflow()])
        .await?;
    // Terminated.
    worker.start("terminated").await?;
    worker
        .client
        .terminate_workflow_execution(rpc(TerminateWorkflowExecutionRequest {
            namespace: worker.namespace.clone(),
            workflow_execution: Some(execution("terminated", "")),
            reason: "test".into(),
            ..Default::default()
        }))
        .await?;
    // Canceled: the worker answers the cancel request.
    worker.start("canceled").await?;
    let first = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(first.task_token, Vec::new())
        .await?;
    worker
        .client
        .request_cancel_workflow_execution(rpc(RequestCancelWorkflowExecutionRequest {
            namespace: worker.namespace.clone(),
            workflow_execution: Some(execution("canceled", "")),
            ..Default::default()
        }))
        .await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, vec![commands::cancel_workflow()])
        .await?;
    // Timed out: a 1 s execution timeout nobody works on.
    let mut start = worker.start_request("times-out");
    start.workflow_execution_timeout = Some(secs(1));
    worker.client.start_workflow_execution(rpc(start)).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = worker
            .describe("times-out")
            .await?
            .workflow_execution_info
            .unwrap_or_default()
            .status;
        if status == sundial_proto::api::enums::v1::WorkflowExecutionStatus::TimedOut as i32 {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "times-out never timed out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Scrapes until `ready` holds (metrics of a commit are recorded just after its reply).
async fn scrape_until(addr: SocketAddr, ready: impl Fn(&Scrape) -> bool) -> Result<Scrape> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(addr).await?;
        if ready(&s) || tokio::time::Instant::now() > deadline {
            return Ok(s);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrape_has_temporals_names_tags_and_counts() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_process, mut worker, metrics) = server_with_metrics(&dir).await?;
    run_workflows(&mut worker).await?;
    let queue = worker.task_queue.clone();
    let outcome = |s: &Scrape, name: &str| {
        s.sum(
            name,
            &[
                ("namespace", "default"),
                ("namespace_state", "active"),
                ("operation", "CompletionStats"),
                ("service_name", "history"),
                ("taskqueue", &queue),
                ("workflowType", "test-workflow"),
            ],
        )
    };
    let s = scrape_until(metrics, |s| outcome(s, "workflow_timeout") >= 1.0).await?;

    // Workflow outcomes, exactly.
    assert_eq!(outcome(&s, "workflow_success"), SUCCEEDED as f64);
    for name in [
        "workflow_failed",
        "workflow_timeout",
        "workflow_terminate",
        "workflow_cancel",
        "workflow_continued_as_new",
    ] {
        assert_eq!(outcome(&s, name), 1.0, "{name}");
    }
    assert_eq!(
        s.types.get("workflow_success").map(String::as_str),
        Some("counter")
    );

    // RPC metrics: 7 starts accepted, 1 refused as already started (not an unexpected error).
    let start = [
        ("namespace", "default"),
        ("operation", "StartWorkflowExecution"),
        ("service_name", "frontend"),
    ];
    assert_eq!(s.sum("service_requests", &start), 8.0);
    assert_eq!(s.sum("service_latency_count", &start), 8.0);
    assert_eq!(s.sum("service_errors", &start), 0.0);
    let mut already = start.to_vec();
    already.push(("error_type", "serviceerror_WorkflowExecutionAlreadyStarted"));
    assert_eq!(s.sum("service_error_with_type", &already), 1.0);
    let mut fastest = start.to_vec();
    fastest.push(("le", "0.001"));
    assert_eq!(
        s.find("service_latency_bucket", &fastest).len(),
        1,
        "Temporal's buckets"
    );
    assert_eq!(
        s.types.get("service_latency").map(String::as_str),
        Some("histogram")
    );
    assert!(
        s.sum(
            "service_requests",
            &[("operation", "PollWorkflowTaskQueue")]
        ) >= 6.0
    );

    // Persistence.
    let create = [
        ("namespace", "default"),
        ("operation", "CreateWorkflowExecution"),
        ("service_name", "history"),
    ];
    assert!(s.sum("persistence_requests", &create) >= 1.0);
    assert!(
        s.sum(
            "persistence_latency_count",
            &[("operation", "UpdateWorkflowExecution")]
        ) >= 1.0
    );
    assert!(
        s.sum(
            "persistence_requests",
            &[("operation", "GetOrCreateShard"), ("namespace", "system")]
        ) >= 1.0
    );

    // Schedule-to-start of the workflow tasks taken from the normal queue.
    let to_start = [
        ("namespace", "default"),
        ("operation", "RecordWorkflowTaskStarted"),
        ("partition", "__normal__"),
        ("service_name", "history"),
        ("task_type", "Workflow"),
        ("taskqueue", queue.as_str()),
    ];
    assert!(s.sum("task_schedule_to_start_latency_count", &to_start) >= 6.0);

    // Sundial's own.
    assert!(s.sum("shard_commit_batch_size_count", &[]) >= 1.0);
    assert!(
        !s.find("shard_commit_latency_bucket", &[("shard_id", "1")])
            .is_empty()
            || !s
                .find("shard_commit_latency_bucket", &[("shard_id", "2")])
                .is_empty()
    );
    assert_eq!(
        s.find("mailbox_depth", &[("actor", "history_shard")]).len(),
        1
    );
    assert!(s.sum("mutable_state_cache_hits", &[]) >= 1.0);

    // No Prometheus-style suffixes, as Temporal exposes them.
    for name in s.names() {
        assert!(!name.ends_with("_total"), "{name} has a _total suffix");
        assert!(
            !name.contains("_seconds_") && !name.ends_with("_milliseconds"),
            "{name}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_is_exact_in_describe_task_queue_and_the_gauges() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (_process, mut worker, metrics) = server_with_metrics(&dir).await?;
    // Nobody polls: three workflow tasks wait in the backlog.
    for wf in ["b-1", "b-2", "b-3"] {
        worker.start(wf).await?;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let queue = worker.task_queue.clone();
    #[allow(deprecated)]
    let enhanced = DescribeTaskQueueRequest {
        namespace: worker.namespace.clone(),
        task_queue: Some(task_queue(&queue)),
        api_mode: DescribeTaskQueueMode::Enhanced as i32,
        report_stats: true,
        report_pollers: true,
        ..Default::default()
    };
    let response = worker
        .client
        .describe_task_queue(rpc(enhanced))
        .await?
        .into_inner();
    let types = &response
        .versions_info
        .get("")
        .context("no unversioned info")?
        .types_info;
    let workflow = types[&(TaskQueueType::Workflow as i32)]
        .stats
        .unwrap_or_default();
    assert_eq!(workflow.approximate_backlog_count, 3);
    let age = workflow.approximate_backlog_age.unwrap_or_default();
    assert!(age.seconds >= 1, "oldest task is {age:?} old");
    assert!(workflow.tasks_add_rate > 0.0);
    let activity = types[&(TaskQueueType::Activity as i32)]
        .stats
        .unwrap_or_default();
    assert_eq!(activity.approximate_backlog_count, 0);

    let legacy = DescribeTaskQueueRequest {
        namespace: worker.namespace.clone(),
        task_queue: Some(task_queue(&queue)),
        report_stats: true,
        ..Default::default()
    };
    let response = worker
        .client
        .describe_task_queue(rpc(legacy))
        .await?
        .into_inner();
    assert_eq!(
        response.stats.unwrap_or_default().approximate_backlog_count,
        3
    );

    let tags = [
        ("namespace", "default"),
        ("operation", "TaskQueuePartitionManager"),
        ("service_name", "matching"),
        ("task_type", "Workflow"),
        ("taskqueue", queue.as_str()),
        ("partition", "0"),
    ];
    // The gauges are refreshed every second.
    let s = scrape_until(metrics, |s| {
        s.sum("approximate_backlog_count", &tags) == 3.0
            && s.sum("approximate_backlog_age_seconds", &tags) >= 1.0
    })
    .await?;
    assert_eq!(s.sum("approximate_backlog_count", &tags), 3.0);
    assert!(s.sum("approximate_backlog_age_seconds", &tags) >= 1.0);

    // A poller drains one task: the backlog shrinks and the poller is listed.
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"")])
        .await?;
    #[allow(deprecated)]
    let enhanced = DescribeTaskQueueRequest {
        namespace: worker.namespace.clone(),
        task_queue: Some(task_queue(&queue)),
        api_mode: DescribeTaskQueueMode::Enhanced as i32,
        task_queue_types: vec![TaskQueueType::Workflow as i32],
        report_stats: true,
        report_pollers: true,
        ..Default::default()
    };
    let response = worker
        .client
        .describe_task_queue(rpc(enhanced))
        .await?
        .into_inner();
    let info = &response.versions_info[""].types_info[&(TaskQueueType::Workflow as i32)];
    assert_eq!(info.stats.unwrap_or_default().approximate_backlog_count, 2);
    assert_eq!(info.pollers.len(), 1);
    assert_eq!(info.pollers[0].identity, worker.identity);
    Ok(())
}

/// Every `expr` in a Grafana dashboard (panels nested in rows included).
fn dashboard_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => dashboard_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn promql_names_are_extracted() {
    let expr = r#"histogram_quantile(0.99, sum by (le, operation) (rate(service_latency_bucket{service_name="frontend", operation=~"Start.*"}[5m])))"#;
    let names: Vec<_> = promql_metrics(expr).into_iter().collect();
    assert_eq!(names, vec!["service_latency_bucket"]);
    let expr = "sum(rate(mutable_state_cache_hits[1m])) / (sum(rate(mutable_state_cache_hits[1m])) + sum(rate(mutable_state_cache_misses[1m])))";
    assert_eq!(promql_metrics(expr).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_only_metrics_the_server_emits() -> Result<()> {
    let path = workspace_root().join("deploy/grafana/sundial.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let dashboard: serde_json::Value = serde_json::from_str(&text).context("dashboard JSON")?;
    ensure!(dashboard["title"].is_string() && dashboard["panels"].is_array());
    let mut exprs = Vec::new();
    dashboard_exprs(&dashboard, &mut exprs);
    ensure!(exprs.len() >= 8, "only {} queries", exprs.len());

    let dir = tempfile::tempdir()?;
    let (_process, mut worker, metrics) = server_with_metrics(&dir).await?;
    run_workflows(&mut worker).await?;
    // A backlog, so the backlog gauges exist.
    worker.task_queue = format!("backlog-{}", worker.task_queue);
    worker.start("waits").await?;
    let s = scrape_until(metrics, |s| {
        !s.find("approximate_backlog_count", &[]).is_empty()
            && !s.find("workflow_timeout", &[]).is_empty()
    })
    .await?;
    let emitted = s.names();
    for expr in &exprs {
        let names = promql_metrics(expr);
        ensure!(!names.is_empty(), "no metric in {expr:?}");
        for name in names {
            ensure!(
                emitted.contains(&name),
                "the dashboard queries {name} ({expr}), which the server does not emit"
            );
        }
    }
    Ok(())
}
