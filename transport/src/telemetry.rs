//! RPC telemetry: a tower layer around the tonic services that records Temporal's service
//! metrics and opens one server span per RPC, continuing the caller's W3C trace context.
//!
//! Metrics (Temporal's `common/rpc/interceptor/telemetry.go`), tagged `operation` (the RPC
//! name: `StartWorkflowExecution`; Operator RPCs prefixed `Operator`; a long-poll
//! `GetWorkflowExecutionHistory` is `PollWorkflowExecutionHistory`), `namespace` (`_unknown_`
//! when the RPC has none) and `service_name` = `frontend`:
//! - `service_requests` (counter), `service_latency` (histogram, seconds),
//!   `service_pending_requests` (gauge);
//! - `service_error_with_type` (every error, tag `error_type` such as
//!   `serviceerror_WorkflowExecutionAlreadyStarted`);
//! - `service_errors` (only unexpected errors: the status codes a correct client does not cause,
//!   `Internal`, `Unavailable`, `Unknown`, `DataLoss`, `Unimplemented`).
//!
//! The namespace comes from the `temporal-namespace` header that SDKs send, else from what the
//! handler resolved ([`note_namespace`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use opentelemetry::KeyValue;
use opentelemetry::context::FutureExt as _;
use opentelemetry::global::BoxedTracer;
use opentelemetry::metrics::{Counter, Histogram, UpDownCounter};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status as SpanStatus, TraceContextExt, Tracer};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use prost::Message as _;
use sundial_actors::Telemetry;
use sundial_storage::instrumented::LATENCY_BUCKETS;
use tonic::Code;

tokio::task_local! {
    static RPC: RefCell<RpcNotes>;
}

/// What a handler tells the layer about the RPC it serves.
#[derive(Default)]
struct RpcNotes {
    namespace: Option<String>,
    operation: Option<&'static str>,
}

/// Tags the current RPC's metrics with `namespace` (when no header named it). No-op outside
/// the layer.
pub fn note_namespace(namespace: &str) {
    let _ = RPC.try_with(|n| {
        let mut n = n.borrow_mut();
        if n.namespace.is_none() {
            n.namespace = Some(namespace.to_string());
        }
    });
}

/// Renames the current RPC's `operation` (e.g. a long-poll history read).
pub fn note_operation(operation: &'static str) {
    let _ = RPC.try_with(|n| n.borrow_mut().operation = Some(operation));
}

struct Instruments {
    requests: Counter<u64>,
    errors: Counter<u64>,
    error_with_type: Counter<u64>,
    latency: Histogram<f64>,
    pending: UpDownCounter<i64>,
}

struct Rpc {
    metrics: Option<Instruments>,
    tracer: Option<Arc<BoxedTracer>>,
    propagator: TraceContextPropagator,
}

/// The layer; a no-op when the node's telemetry is disabled.
#[derive(Clone)]
pub struct TelemetryLayer {
    rpc: Option<Arc<Rpc>>,
}

impl TelemetryLayer {
    /// Records into the node's telemetry.
    pub fn new(telemetry: &Telemetry) -> Self {
        if !telemetry.is_enabled() {
            return Self { rpc: None };
        }
        let metrics = telemetry.meter().map(|m| Instruments {
            requests: m.u64_counter("service_requests").build(),
            errors: m.u64_counter("service_errors").build(),
            error_with_type: m.u64_counter("service_error_with_type").build(),
            latency: m
                .f64_histogram("service_latency")
                .with_boundaries(LATENCY_BUCKETS.to_vec())
                .build(),
            pending: m.i64_up_down_counter("service_pending_requests").build(),
        });
        Self {
            rpc: Some(Arc::new(Rpc {
                metrics,
                tracer: telemetry.tracer().cloned(),
                propagator: TraceContextPropagator::new(),
            })),
        }
    }
}

impl<S> tower::Layer<S> for TelemetryLayer {
    type Service = TelemetryService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TelemetryService {
            inner,
            rpc: self.rpc.clone(),
        }
    }
}

/// The service the layer wraps around each tonic service.
#[derive(Clone)]
pub struct TelemetryService<S> {
    inner: S,
    rpc: Option<Arc<Rpc>>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for TelemetryService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    R: Send + 'static,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    type Future = futures::future::Either<S::Future, BoxFuture<Result<Self::Response, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let Some(rpc) = self.rpc.clone() else {
            return futures::future::Either::Left(self.inner.call(request));
        };
        let Some((service, method)) = split_path(request.uri().path()) else {
            return futures::future::Either::Left(self.inner.call(request));
        };
        let operation = operation_name(&service, &method);
        let header_namespace = request
            .headers()
            .get("temporal-namespace")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let parent = rpc.propagator.extract(&HeaderExtractor(request.headers()));
        let cx = match &rpc.tracer {
            Some(tracer) => {
                let span = tracer
                    .span_builder(format!("{service}/{method}"))
                    .with_kind(SpanKind::Server)
                    .with_attributes([
                        KeyValue::new("rpc.system", "grpc"),
                        KeyValue::new("rpc.service", service.clone()),
                        KeyValue::new("rpc.method", method.clone()),
                    ])
                    .start_with_context(tracer.as_ref(), &parent);
                Some(parent.with_span(span))
            }
            None => None,
        };
        let call = self.inner.call(request);
        let notes = RefCell::new(RpcNotes {
            namespace: header_namespace,
            operation: None,
        });
        let pending_tags = [
            KeyValue::new(
                "namespace",
                notes
                    .borrow()
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "_unknown_".into()),
            ),
            KeyValue::new("operation", operation.clone()),
            KeyValue::new("service_name", "frontend"),
        ];
        if let Some(m) = &rpc.metrics {
            m.pending.add(1, &pending_tags);
        }
        futures::future::Either::Right(Box::pin(async move {
            let started = Instant::now();
            let scoped = RPC.scope(notes, async move {
                let result = match &cx {
                    Some(cx) => call.with_context(cx.clone()).await,
                    None => call.await,
                };
                let notes = RPC.with(|n| std::mem::take(&mut *n.borrow_mut()));
                (result, notes, cx)
            });
            let (result, notes, cx) = scoped.await;
            let elapsed = started.elapsed().as_secs_f64();
            let error = match &result {
                Ok(response) => tonic::Status::from_header_map(response.headers())
                    .filter(|s| s.code() != Code::Ok),
                Err(_) => Some(tonic::Status::unknown("transport error")),
            };
            let operation = notes.operation.map_or(operation, str::to_string);
            if let Some(m) = &rpc.metrics {
                m.pending.add(-1, &pending_tags);
                let namespace = notes.namespace.unwrap_or_else(|| "_unknown_".to_string());
                let tags = [
                    KeyValue::new("namespace", namespace),
                    KeyValue::new("operation", operation.clone()),
                    KeyValue::new("service_name", "frontend"),
                ];
                m.requests.add(1, &tags);
                m.latency.record(elapsed, &tags);
                if let Some(status) = &error {
                    if is_unexpected(status.code()) {
                        m.errors.add(1, &tags);
                    }
                    let mut typed = tags.to_vec();
                    typed.push(KeyValue::new("error_type", error_type(status)));
                    m.error_with_type.add(1, &typed);
                }
            }
            if let Some(cx) = cx {
                let span = cx.span();
                span.set_attribute(KeyValue::new("operation", operation));
                let code = error.as_ref().map_or(Code::Ok, |s| s.code());
                span.set_attribute(KeyValue::new("rpc.grpc.status_code", code as i64));
                if let Some(status) = &error {
                    span.set_status(SpanStatus::error(status.message().to_string()));
                }
                span.end();
            }
            result
        }))
    }
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`).
fn split_path(path: &str) -> Option<(String, String)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    Some((service.to_string(), method.to_string()))
}

/// Temporal's `operation` tag for an RPC.
fn operation_name(service: &str, method: &str) -> String {
    if service.ends_with("OperatorService") {
        format!("Operator{method}")
    } else {
        method.to_string()
    }
}

/// Status codes a well-behaved client does not cause: these count in `service_errors`.
fn is_unexpected(code: Code) -> bool {
    matches!(
        code,
        Code::Internal | Code::Unavailable | Code::Unknown | Code::DataLoss | Code::Unimplemented
    )
}

/// Temporal's `error_type` tag: `serviceerror_` plus the error's Go type, which is the name of
/// its detail message without `Failure`, else the status code's.
fn error_type(status: &tonic::Status) -> String {
    let detail = temporalio_protos::google::rpc::Status::decode(status.details())
        .ok()
        .and_then(|s| s.details.into_iter().next())
        .and_then(|any| {
            let name = any.type_url.rsplit('.').next()?.to_string();
            Some(name.strip_suffix("Failure").unwrap_or(&name).to_string())
        });
    let name = detail.unwrap_or_else(|| {
        match status.code() {
            Code::Cancelled => "Canceled",
            Code::InvalidArgument => "InvalidArgument",
            Code::DeadlineExceeded => "DeadlineExceeded",
            Code::NotFound => "NotFound",
            Code::AlreadyExists => "AlreadyExists",
            Code::PermissionDenied => "PermissionDenied",
            Code::ResourceExhausted => "ResourceExhausted",
            Code::FailedPrecondition => "FailedPrecondition",
            Code::Aborted => "Aborted",
            Code::OutOfRange => "OutOfRange",
            Code::Unimplemented => "Unimplemented",
            Code::Unavailable => "Unavailable",
            Code::DataLoss => "DataLoss",
            Code::Unauthenticated => "Unauthenticated",
            _ => "Internal",
        }
        .to_string()
    });
    format!("serviceerror_{name}")
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_named_as_temporal_names_them() {
        let (s, m) =
            split_path("/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution")
                .unwrap();
        assert_eq!(operation_name(&s, &m), "StartWorkflowExecution");
        let (s, m) =
            split_path("/temporal.api.operatorservice.v1.OperatorService/ListSearchAttributes")
                .unwrap();
        assert_eq!(operation_name(&s, &m), "OperatorListSearchAttributes");
        assert_eq!(split_path("/nothing"), None);
    }

    #[test]
    fn error_types_follow_the_detail_else_the_code() {
        let already = crate::status::to_status(sundial_actors::Error::WorkflowAlreadyStarted {
            workflow_id: "w".into(),
            run_id: "r".into(),
            start_request_id: "q".into(),
        });
        assert_eq!(
            error_type(&already),
            "serviceerror_WorkflowExecutionAlreadyStarted"
        );
        let ns = crate::status::to_status(sundial_actors::Error::NamespaceNotFound("x".into()));
        assert_eq!(error_type(&ns), "serviceerror_NamespaceNotFound");
        assert_eq!(
            error_type(&crate::status::not_found("gone")),
            "serviceerror_NotFound"
        );
        assert_eq!(
            error_type(&tonic::Status::invalid_argument("bad")),
            "serviceerror_InvalidArgument"
        );
        assert!(!is_unexpected(Code::NotFound));
        assert!(is_unexpected(Code::Unavailable));
    }
}
