//! `sundial-transport`: the gRPC surface of a node.
//!
//! Owns the tonic services (the public frontend `WorkflowService`, `OperatorService`, health),
//! the one place where errors become `tonic::Status` (with Temporal's error details), and the
//! server that serves them on a bound listener until a shutdown future resolves.
//!
//! Must not depend on storage backends (only on the storage traits).

mod frontend;
mod history;
mod operator;
mod status;
pub mod telemetry;

use std::future::Future;

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

/// `grpc.health.v1.Health`: SERVING while every history shard of the node serves, NOT_SERVING
/// while one is being acquired, down after a failed acquire, or fenced by another owner.
#[derive(Clone)]
pub struct HealthCheck {
    history: sundial_actors::History,
}

impl HealthCheck {
    /// The health of `node`.
    pub fn new(node: &Node) -> Self {
        Self {
            history: node.history.clone(),
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
        let status = if self.history.serving() {
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

/// Serves the public API of `node` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    node: Node,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let rpc_telemetry = telemetry::TelemetryLayer::new(&node.telemetry);
    // Batch operations run on the node's own batch worker.
    let frontend = batcher::start(Frontend::new(node.clone()), node.log.clone());
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
