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
pub use operator::Operator;

/// `grpc.health.v1.Health`: SERVING while the process runs.
#[derive(Clone, Default)]
pub struct HealthCheck;

#[tonic::async_trait]
impl Health for HealthCheck {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: health_check_response::ServingStatus::Serving as i32,
        }))
    }
}

/// Serves the public API of `node` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    node: Node,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let rpc_telemetry = telemetry::TelemetryLayer::new(&node.telemetry);
    let workflow = WorkflowServiceServer::new(Frontend::new(node.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024);
    let operator = OperatorServiceServer::new(Operator::new(node.clone()))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let health = HealthServer::new(HealthCheck);
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
