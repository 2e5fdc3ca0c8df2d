//! `sundial-proto`: generated gRPC code only.
//!
//! Owns the tonic server traits and clients for Temporal's public `WorkflowService`,
//! `OperatorService` and `grpc.health.v1.Health`, generated from the descriptor set that
//! crates.io's `temporalio-protos` publishes; message types are that crate's. Every RPC that
//! Sundial does not implement answers `Unimplemented` through the generated default stubs.
//! Sundial's own internal API (history and matching between roles) is generated from the
//! `.proto` files under `protos/`. Must not depend on any other Sundial crate.

pub use temporalio_protos::google;
pub use temporalio_protos::temporal::api;

/// `temporal.api.workflowservice.v1`: messages plus the generated server and client.
#[allow(clippy::all, missing_docs)]
pub mod workflowservice {
    pub use temporalio_protos::temporal::api::workflowservice::v1::*;
    include!(concat!(
        env!("OUT_DIR"),
        "/temporal.api.workflowservice.v1.rs"
    ));
}

/// `temporal.api.operatorservice.v1`: messages plus the generated server and client.
#[allow(clippy::all, missing_docs)]
pub mod operatorservice {
    pub use temporalio_protos::temporal::api::operatorservice::v1::*;
    include!(concat!(
        env!("OUT_DIR"),
        "/temporal.api.operatorservice.v1.rs"
    ));
}

/// `grpc.health.v1`: messages plus the generated server and client.
#[allow(clippy::all, missing_docs)]
pub mod health {
    pub use temporalio_protos::grpc::health::v1::*;
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

/// `sundial.internal.v1`: Sundial's internal history and matching API (its own `.proto` files
/// under `protos/`), messages, servers and clients.
#[allow(clippy::all, missing_docs)]
pub mod internal {
    include!(concat!(env!("OUT_DIR"), "/internal/sundial.internal.v1.rs"));
}
