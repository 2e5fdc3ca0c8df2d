//! `sundial-transport`: the gRPC surface of a node.
//!
//! Owns the tonic services (the public frontend `WorkflowService`, `OperatorService`, health),
//! the one place where errors become `tonic::Status` (with Temporal's error details), and the
//! server that serves them on a bound listener until a shutdown future resolves.
//!
//! Must not depend on storage backends (only on the storage traits).

mod frontend;
mod history;
pub mod internal;
mod operator;
mod status;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use sundial_actors::Node;
use sundial_proto::health::health_server::{Health, HealthServer};
use sundial_proto::health::{HealthCheckRequest, HealthCheckResponse, health_check_response};
use sundial_proto::operatorservice::operator_service_server::OperatorServiceServer;
use sundial_proto::workflowservice::workflow_service_server::WorkflowServiceServer;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

pub use frontend::{Frontend, ensure_namespace, event_types};

mod batcher;
pub use operator::Operator;

/// `grpc.health.v1.Health`: SERVING while every history shard of the node serves and matching
/// can be reached; NOT_SERVING while a shard is being acquired, down after a failed acquire or
/// fenced by another owner, or (a frontend of a split deployment) while no matching process is
/// known to be up.
#[derive(Clone)]
pub struct HealthCheck {
    history: sundial_actors::History,
    matching: sundial_actors::MatchingClient,
}

impl HealthCheck {
    /// The health of `node`.
    pub fn new(node: &Node) -> Self {
        Self {
            history: node.history.clone(),
            matching: node.matching.clone(),
        }
    }
}

#[tonic::async_trait]
impl Health for HealthCheck {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        use health_check_response::ServingStatus;
        let status = if self.history.serving().await && self.matching.serving().await {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
        }))
    }
}

/// The largest request the public API decodes: gRPC's default receive limit, which
/// Temporal's frontend keeps. It is the only bound Temporal puts on headers (it records their
/// size but does not check it against `limit.blobSize`).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Serves the public API of `node` on `listener` until `shutdown` resolves, with the node's
/// batch worker in this process (every role in one process).
pub async fn serve(
    listener: TcpListener,
    node: Node,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    // Batch operations run on the node's own batch worker.
    let frontend = batcher::start(Frontend::new(node.clone()), node.log.clone());
    serve_frontend(listener, node, frontend, shutdown).await
}

/// The listeners of the roles a process runs on their own ports (`--services`); `None` for a
/// role it does not run.
#[derive(Default)]
pub struct RoleListeners {
    /// The public API.
    pub frontend: Option<TcpListener>,
    /// The internal history API.
    pub history: Option<TcpListener>,
    /// The internal matching API.
    pub matching: Option<TcpListener>,
    /// The worker role's port (health only: its work is the system workers it runs).
    pub worker: Option<TcpListener>,
}

/// Serves each role of `node` that has a listener, until `shutdown` resolves. The history and
/// matching roles serve the internal API of the node's local shards and partitions; the worker
/// role runs the batch worker, which reaches history and matching through the node like any
/// frontend; every port answers `grpc.health.v1`.
pub async fn serve_roles(
    listeners: RoleListeners,
    node: Node,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    use futures::FutureExt;
    let shutdown = shutdown.shared();
    let mut servers = Vec::new();
    if let Some(listener) = listeners.frontend {
        let frontend = Frontend::new(node.clone());
        let server = serve_frontend(listener, node.clone(), frontend, shutdown.clone());
        servers.push(server.boxed());
    }
    if let Some(listener) = listeners.history {
        let local = node
            .local_history
            .clone()
            .expect("a process that serves the history role runs its shards");
        let history = internal::HistoryServer::new(
            Arc::new(local),
            node.namespaces.clone(),
            node.history.num_shards(),
        );
        let service =
            sundial_proto::internal::history_service_server::HistoryServiceServer::new(history)
                .max_decoding_message_size(INTERNAL_MESSAGE_BYTES)
                .max_encoding_message_size(INTERNAL_MESSAGE_BYTES);
        let server = internal_server()
            .add_service(service)
            .add_service(HealthServer::new(HealthCheck::new(&node)));
        servers.push(on_actor_thread(&node, serve_on(server, listener, shutdown.clone())).boxed());
    }
    if let Some(listener) = listeners.matching {
        let local: sundial_actors::MatchingClient = Arc::new(
            node.local_matching
                .clone()
                .expect("a process that serves the matching role runs its partitions"),
        );
        let service = sundial_proto::internal::matching_service_server::MatchingServiceServer::new(
            internal::MatchingServer::new(local),
        )
        .max_decoding_message_size(INTERNAL_MESSAGE_BYTES)
        .max_encoding_message_size(INTERNAL_MESSAGE_BYTES);
        let server = internal_server()
            .add_service(service)
            .add_service(HealthServer::new(AlwaysServing));
        servers.push(on_actor_thread(&node, serve_on(server, listener, shutdown.clone())).boxed());
    }
    if let Some(listener) = listeners.worker {
        batcher::start_everywhere(Frontend::new(node.clone()), node.log.clone());
        let server = internal_server().add_service(HealthServer::new(AlwaysServing));
        servers.push(serve_on(server, listener, shutdown.clone()).boxed());
    }
    for result in futures::future::join_all(servers).await {
        result?;
    }
    Ok(())
}

/// Runs an internal server on the node's actor thread (see ARCHITECTURE.md, "Threads of a role
/// process") and resolves when it ends. An actor thread that stops under the server (it
/// panicked) is logged: its shards and partitions stopped with it.
fn on_actor_thread(
    node: &Node,
    serving: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
) -> impl Future<Output = Result<(), tonic::transport::Error>> {
    let (done, finished) = tokio::sync::oneshot::channel();
    node.spawn_on_actor_thread(async move {
        let _ = done.send(serving.await);
    });
    let log = node.log.clone();
    async move {
        finished.await.unwrap_or_else(|_| {
            slog::crit!(
                log,
                "the actor thread stopped while serving the internal API"
            );
            Ok(())
        })
    }
}

/// The largest message the internal API takes (a reset carries whole histories).
const INTERNAL_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A server for an internal port. Its calls are not counted as the public API's (the
/// frontend's RPC metrics are those of `WorkflowService`).
fn internal_server() -> tonic::transport::server::Router {
    tonic::transport::Server::builder().add_routes(Default::default())
}

async fn serve_on(
    router: tonic::transport::server::Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    router
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}

/// `grpc.health.v1.Health` of a role that is up as long as its process is.
#[derive(Clone, Copy)]
struct AlwaysServing;

#[tonic::async_trait]
impl Health for AlwaysServing {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: health_check_response::ServingStatus::Serving as i32,
        }))
    }
}

async fn serve_frontend(
    listener: TcpListener,
    node: Node,
    frontend: Frontend,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let rpc_telemetry = telemetry::TelemetryLayer::new(&node.telemetry);
    let workflow = WorkflowServiceServer::new(frontend)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_REQUEST_BYTES)
        .max_encoding_message_size(64 * 1024 * 1024);
    let operator = OperatorServiceServer::new(Operator::new(node.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    // The `temporal` CLI asks for health with gzip, as it asks every service.
    let health = HealthServer::new(HealthCheck::new(&node))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    tonic::transport::Server::builder()
        .layer(rpc_telemetry)
        .add_service(workflow)
        .add_service(operator)
        .add_service(health)
        // Without TCP_NODELAY every long-poll answer waits ~40 ms for the client's delayed ACK.
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
