//! OTLP traces: `sundial` processes export to an in-process OTLP/gRPC collector; a start
//! request carrying a W3C `traceparent` must come back as RPC span → shard apply → shard commit
//! → persistence commit, all in the caller's trace, in one process and across a frontend and a
//! history process.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use sundial_tests::process::{SundialProcess, free_layout_port, free_port};
use sundial_tests::worker::{Worker, rpc};

/// Spans received, in arrival order.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts the collector, in this process; answers it and the environment that makes a
/// `sundial` process export to it (with a short batching delay).
fn start_collector() -> Result<(Collector, Vec<(&'static str, String)>)> {
    let collector = Collector::default();
    let collector_addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(collector_addr),
    );
    let env = vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://{collector_addr}"),
        ),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_string()),
    ];
    Ok((collector, env))
}

/// Starts a workflow with a W3C `traceparent` and waits for the chain RPC → shard apply →
/// shard commit → persistence commit in the caller's trace, wherever the processes recorded
/// them; `logs` tells what the servers said when it never comes.
async fn a_traced_start_is_one_chain(
    collector: &Collector,
    worker: &mut Worker,
    logs: impl Fn() -> String,
) -> Result<()> {
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    let mut request = rpc(worker.start_request("traced"));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01").parse()?,
    );
    worker.client.start_workflow_execution(request).await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let spans: Vec<Span> = collector
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| hex(&s.trace_id) == trace_id)
            .cloned()
            .collect();
        let child_of = |parent: &Span, name: &str| {
            spans
                .iter()
                .find(|s| s.name == name && s.parent_span_id == parent.span_id)
                .cloned()
        };
        let rpc_span = spans.iter().find(|s| {
            s.name.ends_with("WorkflowService/StartWorkflowExecution")
                && hex(&s.parent_span_id) == caller_span
        });
        let chain = rpc_span.and_then(|rpc_span| {
            let apply = child_of(rpc_span, "shard apply")?;
            let commit = child_of(&apply, "shard commit")?;
            let write = child_of(&commit, "persistence CreateWorkflowExecution")?;
            Some((rpc_span.clone(), apply, commit, write))
        });
        if let Some((rpc_span, apply, commit, write)) = chain {
            // Children lie within the RPC's time; the server span kind is SERVER (2).
            assert_eq!(rpc_span.kind, 2);
            assert!(apply.start_time_unix_nano >= rpc_span.start_time_unix_nano);
            assert!(write.end_time_unix_nano <= rpc_span.end_time_unix_nano);
            assert!(commit.start_time_unix_nano >= apply.start_time_unix_nano);
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let names: Vec<_> = spans
                .iter()
                .map(|s| (s.name.clone(), hex(&s.span_id), hex(&s.parent_span_id)))
                .collect();
            bail!(
                "no RPC → apply → commit → persistence chain in trace {trace_id}; spans: {names:?}; log:\n{}",
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_a_request_from_the_rpc_to_the_storage_commit() -> Result<()> {
    let (collector, env) = start_collector()?;
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let db = dir.path().join("traces.db");
    let args = SundialProcess::start_dev_args(port, &db, &[]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut process =
        SundialProcess::spawn_with_env(&args, &env, addr, &dir.path().join("sundial.log"))?;
    let mut worker = Worker::new(process.wait_ready().await?);
    a_traced_start_is_one_chain(&collector, &mut worker, || process.logs()).await
}

/// Across processes: the frontend's RPC span is the parent of the spans the history process
/// records for the same start (the internal call carries the trace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_follow_a_request_from_the_frontend_into_the_history_process() -> Result<()> {
    let (collector, env) = start_collector()?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("traces.db");
    let port = free_layout_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut processes = Vec::new();
    for role in ["history", "matching", "frontend"] {
        let args = SundialProcess::start_dev_args(port, &db, &["--services", role]);
        let log = dir.path().join(format!("{role}.log"));
        processes.push(SundialProcess::spawn_with_env(&args, &env, addr, &log)?);
    }
    let mut worker = Worker::new(processes[2].wait_ready().await?);
    // The frontend serves once it reaches history and matching.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while sundial_tests::health(addr).await?
        != sundial_proto::health::health_check_response::ServingStatus::Serving
    {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let logs = || {
        processes
            .iter()
            .map(|p| p.logs())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let result = a_traced_start_is_one_chain(&collector, &mut worker, logs).await;
    for process in &mut processes {
        process.kill()?;
    }
    result
}
