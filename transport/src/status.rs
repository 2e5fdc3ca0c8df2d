//! The one place where errors become `tonic::Status`, with Temporal's error details so SDKs
//! decode them as they would Temporal's.

use prost::Message;
use prost_wkt_types::Any;
use sundial_actors::Error;
use sundial_engine::api::enums::v1::{ResourceExhaustedCause, ResourceExhaustedScope};
use sundial_engine::api::errordetails::v1::{
    NamespaceNotFoundFailure, NotFoundFailure, ResourceExhaustedFailure,
    WorkflowExecutionAlreadyStartedFailure, WorkflowNotReadyFailure,
};
use temporalio_protos::google::rpc::Status as RpcStatus;
use tonic::{Code, Status};

fn with_detail<M: Message>(code: Code, message: String, type_name: &str, detail: M) -> Status {
    let status = RpcStatus {
        code: code as i32,
        message: message.clone(),
        details: vec![Any {
            type_url: format!("type.googleapis.com/{type_name}"),
            value: detail.encode_to_vec(),
        }],
    };
    Status::with_details(code, message, status.encode_to_vec().into())
}

/// A `NotFound` with Temporal's `NotFoundFailure` detail.
pub fn not_found(message: impl Into<String>) -> Status {
    with_detail(
        Code::NotFound,
        message.into(),
        "temporal.api.errordetails.v1.NotFoundFailure",
        NotFoundFailure::default(),
    )
}

/// An `InvalidArgument` naming what is wrong.
pub fn invalid(message: impl Into<String>) -> Status {
    Status::invalid_argument(message.into())
}

/// Maps an actor-layer error to the status Temporal returns for it.
pub fn to_status(err: Error) -> Status {
    match err {
        Error::WorkflowAlreadyStarted {
            ref run_id,
            ref start_request_id,
            ..
        } => with_detail(
            Code::AlreadyExists,
            err.to_string(),
            "temporal.api.errordetails.v1.WorkflowExecutionAlreadyStartedFailure",
            WorkflowExecutionAlreadyStartedFailure {
                start_request_id: start_request_id.clone(),
                run_id: run_id.clone(),
                ..Default::default()
            },
        ),
        Error::NamespaceNotFound(ref name) => with_detail(
            Code::NotFound,
            err.to_string(),
            "temporal.api.errordetails.v1.NamespaceNotFoundFailure",
            NamespaceNotFoundFailure {
                namespace: name.clone(),
            },
        ),
        Error::NotFound(m) => not_found(m),
        Error::InvalidArgument(m) => invalid(m),
        Error::Engine(e) => match e {
            sundial_engine::Error::InvalidArgument(m) => invalid(m),
            sundial_engine::Error::NotFound(m) => not_found(m),
            sundial_engine::Error::WorkflowCompleted => {
                not_found("workflow execution already completed")
            }
            sundial_engine::Error::TaskAlreadyStarted => not_found("task already started"),
            sundial_engine::Error::LimitExceeded(m) => Status::resource_exhausted(m),
        },
        Error::Storage(sundial_storage::Error::AlreadyExists(m)) => Status::already_exists(m),
        Error::Storage(e) => Status::unavailable(e.to_string()),
        Error::StickyWorkerUnavailable => Status::unavailable("sticky worker unavailable"),
        Error::Unavailable(m) => Status::unavailable(m),
        // Temporal's ShardOwnershipLost also answers Unavailable: the client retries and the
        // request reaches the owner.
        e @ Error::ShardOwnershipLost { .. } => Status::unavailable(e.to_string()),
        Error::ResourceExhausted(m) => Status::resource_exhausted(m),
        Error::Internal(m) => Status::internal(m),
        Error::Overloaded(m) => with_detail(
            Code::ResourceExhausted,
            m,
            "temporal.api.errordetails.v1.ResourceExhaustedFailure",
            ResourceExhaustedFailure {
                cause: ResourceExhaustedCause::SystemOverloaded as i32,
                scope: ResourceExhaustedScope::System as i32,
            },
        ),
        Error::WorkflowNotReady(m) => with_detail(
            Code::FailedPrecondition,
            m,
            "temporal.api.errordetails.v1.WorkflowNotReadyFailure",
            WorkflowNotReadyFailure::default(),
        ),
    }
}
