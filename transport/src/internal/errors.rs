//! Errors across the internal API: an actor-layer [`Error`] travels as a
//! `sundial.internal.v1.Error` (in a history reply, or in the details of a failed call's gRPC
//! status) and comes out as the same [`Error`] on the other side. A call that fails without one
//! (the peer is down, unreachable, or not a Sundial node) is [`Error::Unavailable`], naming the
//! peer: a caller retries it, as it retries a shard being acquired.

use prost::Message;
use sundial_actors::Error;
use sundial_proto::internal::{self as wire, error::Kind};
use tonic::Status;

/// The wire form of an error.
pub fn error_to(e: &Error) -> wire::Error {
    use sundial_engine::Error as E;
    use sundial_storage::Error as S;
    let mut w = wire::Error::default();
    let kind = match e {
        Error::Engine(e) => match e {
            E::InvalidArgument(m) => (Kind::EngineInvalidArgument, m.clone()),
            E::NotFound(m) => (Kind::EngineNotFound, m.clone()),
            E::WorkflowCompleted => (Kind::EngineWorkflowCompleted, String::new()),
            E::TaskAlreadyStarted => (Kind::EngineTaskAlreadyStarted, String::new()),
            E::LimitExceeded(m) => (Kind::EngineLimitExceeded, m.clone()),
        },
        Error::Storage(e) => match e {
            S::ShardOwnershipLost {
                shard_id,
                expected,
                actual,
            } => {
                w.shard_id = *shard_id;
                w.expected_range_id = *expected;
                w.actual_range_id = *actual;
                (Kind::StorageShardOwnershipLost, String::new())
            }
            S::TaskQueueLeaseLost { expected, actual } => {
                w.expected_range_id = *expected;
                w.actual_range_id = *actual;
                (Kind::StorageTaskQueueLeaseLost, String::new())
            }
            S::ConditionFailed(m) => (Kind::StorageConditionFailed, m.clone()),
            S::AlreadyExists(m) => (Kind::StorageAlreadyExists, m.clone()),
            S::NotFound(m) => (Kind::StorageNotFound, m.clone()),
            S::Backend(m) => (Kind::StorageBackend, m.clone()),
            S::Unavailable(m) => (Kind::StorageUnavailable, m.clone()),
        },
        Error::WorkflowAlreadyStarted {
            workflow_id,
            run_id,
            start_request_id,
        } => {
            w.workflow_id = workflow_id.clone();
            w.run_id = run_id.clone();
            w.start_request_id = start_request_id.clone();
            (Kind::WorkflowAlreadyStarted, String::new())
        }
        Error::ShardOwnershipLost { shard_id, owner } => {
            w.shard_id = *shard_id;
            w.owner = owner.clone();
            (Kind::ShardOwnershipLost, String::new())
        }
        Error::NamespaceNotFound(name) => (Kind::NamespaceNotFound, name.clone()),
        Error::NotFound(m) => (Kind::NotFound, m.clone()),
        Error::InvalidArgument(m) => (Kind::InvalidArgument, m.clone()),
        Error::StickyWorkerUnavailable => (Kind::StickyWorkerUnavailable, String::new()),
        Error::Unavailable(m) => (Kind::Unavailable, m.clone()),
        Error::WorkflowNotReady(m) => (Kind::WorkflowNotReady, m.clone()),
        Error::ResourceExhausted(m) => (Kind::ResourceExhausted, m.clone()),
        Error::Overloaded(m) => (Kind::Overloaded, m.clone()),
        Error::Internal(m) => (Kind::Internal, m.clone()),
    };
    w.kind = kind.0 as i32;
    // Variants with fields of their own carry no text: it is rebuilt from the fields.
    w.message = kind.1;
    w
}

/// The error a wire error stands for. An unknown kind (a newer peer) keeps its text as an
/// internal error rather than being guessed at.
pub fn error_from(w: wire::Error) -> Error {
    use sundial_engine::Error as E;
    use sundial_storage::Error as S;
    let m = w.message;
    match Kind::try_from(w.kind).unwrap_or(Kind::Unspecified) {
        Kind::EngineInvalidArgument => E::InvalidArgument(m).into(),
        Kind::EngineNotFound => E::NotFound(m).into(),
        Kind::EngineWorkflowCompleted => E::WorkflowCompleted.into(),
        Kind::EngineTaskAlreadyStarted => E::TaskAlreadyStarted.into(),
        Kind::EngineLimitExceeded => E::LimitExceeded(m).into(),
        Kind::StorageShardOwnershipLost => S::ShardOwnershipLost {
            shard_id: w.shard_id,
            expected: w.expected_range_id,
            actual: w.actual_range_id,
        }
        .into(),
        Kind::StorageTaskQueueLeaseLost => S::TaskQueueLeaseLost {
            expected: w.expected_range_id,
            actual: w.actual_range_id,
        }
        .into(),
        Kind::StorageConditionFailed => S::ConditionFailed(m).into(),
        Kind::StorageAlreadyExists => S::AlreadyExists(m).into(),
        Kind::StorageNotFound => S::NotFound(m).into(),
        Kind::StorageBackend => S::Backend(m).into(),
        Kind::StorageUnavailable => S::Unavailable(m).into(),
        Kind::WorkflowAlreadyStarted => Error::WorkflowAlreadyStarted {
            workflow_id: w.workflow_id,
            run_id: w.run_id,
            start_request_id: w.start_request_id,
        },
        Kind::ShardOwnershipLost => Error::ShardOwnershipLost {
            shard_id: w.shard_id,
            owner: w.owner,
        },
        Kind::NamespaceNotFound => Error::NamespaceNotFound(m),
        Kind::NotFound => Error::NotFound(m),
        Kind::InvalidArgument => Error::InvalidArgument(m),
        Kind::StickyWorkerUnavailable => Error::StickyWorkerUnavailable,
        Kind::Unavailable => Error::Unavailable(m),
        Kind::WorkflowNotReady => Error::WorkflowNotReady(m),
        Kind::ResourceExhausted => Error::ResourceExhausted(m),
        Kind::Overloaded => Error::Overloaded(m),
        Kind::Internal => Error::Internal(m),
        Kind::Unspecified => Error::Internal(format!("a peer answered an unknown error: {m}")),
    }
}

/// The status an internal call fails with: the code the public API answers for the error (so
/// logs and metrics read alike), the error itself in the details.
pub fn status_to(e: &Error) -> Status {
    let code = crate::status::to_status(e.clone()).code();
    Status::with_details(code, e.to_string(), error_to(e).encode_to_vec().into())
}

/// The error a failed internal call to `peer` stands for.
pub fn status_from(status: Status, peer: &str) -> Error {
    if !status.details().is_empty()
        && let Ok(w) = wire::Error::decode(status.details())
    {
        return error_from(w);
    }
    // No Sundial error inside: the call did not reach a Sundial node's handler (refused,
    // reset, timed out, or a proxy answered).
    Error::Unavailable(format!(
        "{peer} did not answer ({:?}): {}",
        status.code(),
        status.message()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn every_error() -> Vec<Error> {
        use sundial_engine::Error as E;
        use sundial_storage::Error as S;
        vec![
            E::InvalidArgument("bad".into()).into(),
            E::NotFound("gone".into()).into(),
            E::WorkflowCompleted.into(),
            E::TaskAlreadyStarted.into(),
            E::LimitExceeded("too big".into()).into(),
            S::ShardOwnershipLost {
                shard_id: 3,
                expected: 7,
                actual: 8,
            }
            .into(),
            S::TaskQueueLeaseLost {
                expected: 2,
                actual: 5,
            }
            .into(),
            S::ConditionFailed("version".into()).into(),
            S::AlreadyExists("row".into()).into(),
            S::NotFound("row".into()).into(),
            S::Backend("disk".into()).into(),
            S::Unavailable("down".into()).into(),
            Error::WorkflowAlreadyStarted {
                workflow_id: "wf".into(),
                run_id: "run".into(),
                start_request_id: "req".into(),
            },
            Error::ShardOwnershipLost {
                shard_id: 4,
                owner: "10.0.0.2:7234".into(),
            },
            Error::ShardOwnershipLost {
                shard_id: 4,
                owner: String::new(),
            },
            Error::NamespaceNotFound("ns".into()),
            Error::NotFound("no run".into()),
            Error::InvalidArgument("no id".into()),
            Error::StickyWorkerUnavailable,
            Error::Unavailable("acquiring".into()),
            Error::WorkflowNotReady("not yet".into()),
            Error::ResourceExhausted("limit".into()),
            Error::Overloaded("queue full".into()),
            Error::Internal("bug".into()),
        ]
    }

    #[test]
    fn every_error_crosses_the_wire_as_itself() {
        for e in every_error() {
            assert_eq!(error_from(error_to(&e)), e);
        }
    }

    #[test]
    fn every_error_crosses_in_a_status_as_itself() {
        for e in every_error() {
            let status = status_to(&e);
            assert_eq!(status_from(status, "history 127.0.0.1:7234"), e);
        }
    }

    #[test]
    fn a_call_that_reaches_no_sundial_handler_is_unavailable_naming_the_peer() {
        for status in [
            Status::unavailable("tcp connect error: Connection refused"),
            Status::deadline_exceeded("timeout"),
            Status::unknown("h2 protocol error"),
            Status::with_details(Code::Internal, "proxy", vec![0xff, 0x01].into()),
        ] {
            let Error::Unavailable(message) = status_from(status, "history 127.0.0.1:7234") else {
                panic!("not unavailable");
            };
            assert!(
                message.starts_with("history 127.0.0.1:7234 did not answer"),
                "{message}"
            );
        }
    }

    #[test]
    fn ownership_lost_is_unavailable_naming_the_owner() {
        let status = status_to(&Error::ShardOwnershipLost {
            shard_id: 4,
            owner: "10.0.0.2:7234".into(),
        });
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(status.message(), "shard 4 is owned by 10.0.0.2:7234");
    }

    #[test]
    fn an_unknown_kind_is_internal_with_its_text() {
        let e = error_from(wire::Error {
            kind: 999,
            message: "from the future".into(),
            ..Default::default()
        });
        assert_eq!(
            e,
            Error::Internal("a peer answered an unknown error: from the future".into())
        );
    }
}
