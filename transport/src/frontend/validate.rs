//! Request validation and the small conversions every RPC shares.

use super::*;

pub(super) fn poll_timeout<T>(req: &Request<T>) -> Duration {
    let from_header = req
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_grpc_timeout);
    match from_header {
        Some(d) => d.saturating_sub(Duration::from_secs(1)).min(MAX_POLL),
        None => MAX_POLL,
    }
}

pub(super) fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (num, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Checks a required id against `limit.maxIDLength`.
pub(super) fn check_id_within(value: &str, what: &str, max_len: i64) -> Result<(), Status> {
    if value.is_empty() {
        return Err(invalid(format!("{what} is not set on request.")));
    }
    check_length_within(value, what, max_len)
}

/// Refuses a value longer than `limit.maxIDLength` with Temporal's message ("Identity length
/// exceeds limit.", "RequestId length exceeds limit."); an empty one is fine.
pub(super) fn check_length_within(value: &str, what: &str, max_len: i64) -> Result<(), Status> {
    if value.len() as i64 > max_len {
        return Err(invalid(format!("{what} length exceeds limit.")));
    }
    Ok(())
}

/// The task queue name of a request, required and at most `max_len` long.
pub(super) fn task_queue_within(q: &Option<TaskQueue>, max_len: i64) -> Result<String, Status> {
    match q {
        Some(q) if !q.name.is_empty() => {
            if q.name.len() as i64 > max_len {
                return Err(invalid("taskQueue length exceeds limit"));
            }
            Ok(q.name.clone())
        }
        _ => Err(invalid("TaskQueue is not set on request.")),
    }
}

impl Frontend {
    /// The longest id the server accepts now (`limit.maxIDLength`).
    pub(super) fn max_id_length(&self) -> i64 {
        self.node.history.limits().max_id_length
    }

    /// Checks a required id against `limit.maxIDLength`.
    pub(super) fn check_id(&self, value: &str, what: &str) -> Result<(), Status> {
        check_id_within(value, what, self.max_id_length())
    }

    /// The task queue name of a request, required and within `limit.maxIDLength`.
    pub(super) fn task_queue_name(&self, q: &Option<TaskQueue>) -> Result<String, Status> {
        task_queue_within(q, self.max_id_length())
    }

    /// The run a request names, its workflow id required. (Its length is not checked: Temporal
    /// checks `limit.maxIDLength` on starts only and answers NotFound elsewhere.)
    pub(super) fn execution_ref(
        &self,
        namespace_id: &str,
        execution: &Option<WorkflowExecution>,
    ) -> Result<RunRef, Status> {
        let e = execution
            .as_ref()
            .ok_or_else(|| invalid("Execution is not set on request."))?;
        if e.workflow_id.is_empty() {
            return Err(invalid("WorkflowId is not set on request."));
        }
        Ok(RunRef {
            namespace_id: namespace_id.to_string(),
            workflow_id: e.workflow_id.clone(),
            run_id: e.run_id.clone(),
        })
    }
}

pub(super) fn decode_token(bytes: &[u8]) -> Result<TaskToken, Status> {
    if bytes.is_empty() {
        return Err(invalid("Task token not set on request."));
    }
    TaskToken::decode(bytes).map_err(|_| invalid("Error deserializing task token."))
}

pub(super) fn run_of(token: &TaskToken) -> RunRef {
    RunRef {
        namespace_id: token.namespace_id.clone(),
        workflow_id: token.workflow_id.clone(),
        run_id: token.run_id.clone(),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn start_params(
    namespace_id: &str,
    namespace_name: &str,
    workflow_id: &str,
    request_id: &str,
    attributes: WorkflowExecutionStartedEventAttributes,
) -> StartParams {
    let request_id = if request_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        request_id.to_string()
    };
    StartParams {
        namespace_id: namespace_id.to_string(),
        workflow_id: workflow_id.to_string(),
        run_id: uuid::Uuid::new_v4().to_string(),
        request_id,
        attributes,
        signal: None,
        namespace_name: namespace_name.to_string(),
        defer_first_workflow_task: false,
    }
}

/// Refuses a payload over `limit.blobSize.error` as Temporal does.
pub(super) fn check_blob(
    payloads: Option<&sundial_engine::api::common::v1::Payloads>,
    limits: &sundial_engine::Limits,
) -> Result<(), Status> {
    let size = payloads.map_or(0, prost::Message::encoded_len) as i64;
    if size > limits.blob_size_error {
        return Err(invalid("Blob data size exceeds limit."));
    }
    Ok(())
}

/// Checks and caps (to 100 years) a duration of a request as Temporal's frontend does;
/// `field` names it in Temporal's message (`chasm/lib/workflow/validator.go`).
pub(super) fn check_request_duration(
    d: &mut Option<prost_wkt_types::Duration>,
    field: &str,
) -> Result<(), Status> {
    validate_and_cap(d.as_mut())
        .map_err(|e| invalid(format!("An invalid {field} is set on request. cause: {e}")))
}

/// Checks a retry policy of a request (Temporal's `retrypolicy.Validate`), capping its
/// intervals.
pub(super) fn check_retry_policy(
    policy: &mut Option<sundial_engine::api::common::v1::RetryPolicy>,
) -> Result<(), Status> {
    match policy {
        Some(p) => sundial_engine::retry::validate(p).map_err(invalid),
        None => Ok(()),
    }
}

/// What an activity report came to.
pub(super) struct Reported {
    /// The workflow asked to cancel the activity (or, as Temporal answers an oversized
    /// heartbeat, the activity was failed and should stop).
    pub cancel_requested: bool,
    /// Parts of a failure report the server dropped, each as the failure saying why
    /// (`RespondActivityTaskFailedResponse.failures`).
    pub failures: Vec<sundial_engine::api::failure::v1::Failure>,
}

/// Whether [`within_blob_limit`] replaced or trimmed a report.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Limited {
    /// An oversized heartbeat was turned into a failure.
    heartbeat_failed: bool,
    /// What a failure report lost (its last heartbeat details), as failures saying why.
    failures: Vec<sundial_engine::api::failure::v1::Failure>,
}

impl Limited {
    /// The caller's answer once history applied the (possibly replaced) report.
    pub(super) fn reported(self, cancel_requested: bool) -> Reported {
        Reported {
            cancel_requested: cancel_requested || self.heartbeat_failed,
            failures: self.failures,
        }
    }
}

/// The non-retryable server failure Temporal records when an activity's payload is over
/// `limit.blobSize.error` (`failure.NewServerFailure(common.FailureReason…ExceedsLimit, true)`).
fn size_failure(message: &str) -> sundial_engine::api::failure::v1::Failure {
    use sundial_engine::api::failure::v1::{Failure, ServerFailureInfo, failure::FailureInfo};
    Failure {
        message: message.to_string(),
        failure_info: Some(FailureInfo::ServerFailureInfo(ServerFailureInfo {
            non_retryable: true,
        })),
        ..Default::default()
    }
}

/// An activity report within `limit.blobSize.error`, as Temporal's frontend makes it: an
/// oversized heartbeat, result or cancel details fail the activity instead (with "Heartbeat
/// details exceed size limit.", "Complete result exceeds size limit.", "Cancel details exceed
/// size limit."); a failure's oversized last heartbeat details are dropped and the worker is
/// told so. (Temporal also truncates an oversized failure; that is not done here.)
pub(super) fn within_blob_limit(
    report: ActivityReport,
    limits: &sundial_engine::Limits,
) -> (ActivityReport, Limited) {
    let over = |p: &Option<sundial_engine::api::common::v1::Payloads>| {
        p.as_ref().map_or(0, prost::Message::encoded_len) as i64 > limits.blob_size_error
    };
    let fail = |message: &str| ActivityReport::Failed(Some(size_failure(message)), None);
    match report {
        ActivityReport::Heartbeat(details) if over(&details) => (
            fail("Heartbeat details exceed size limit."),
            Limited {
                heartbeat_failed: true,
                ..Default::default()
            },
        ),
        ActivityReport::Completed(result) if over(&result) => (
            fail("Complete result exceeds size limit."),
            Limited::default(),
        ),
        ActivityReport::Canceled(details) if over(&details) => (
            fail("Cancel details exceed size limit."),
            Limited::default(),
        ),
        ActivityReport::Failed(failure, details) if over(&details) => (
            ActivityReport::Failed(failure, None),
            Limited {
                failures: vec![size_failure("Heartbeat details exceed size limit.")],
                ..Default::default()
            },
        ),
        report => (report, Limited::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(size: usize) -> Option<sundial_engine::api::common::v1::Payloads> {
        Some(sundial_engine::api::common::v1::Payloads {
            payloads: vec![sundial_engine::api::common::v1::Payload {
                data: vec![7; size],
                ..Default::default()
            }],
        })
    }

    fn failure_message(report: &ActivityReport) -> Option<&str> {
        match report {
            ActivityReport::Failed(Some(f), None) => Some(f.message.as_str()),
            _ => None,
        }
    }

    #[test]
    fn oversized_activity_payloads_fail_the_activity_as_temporal_does() {
        let limits = sundial_engine::Limits {
            blob_size_error: 100,
            ..Default::default()
        };
        let (report, limited) =
            within_blob_limit(ActivityReport::Heartbeat(payloads(200)), &limits);
        assert_eq!(
            failure_message(&report),
            Some("Heartbeat details exceed size limit.")
        );
        assert!(limited.reported(false).cancel_requested);
        let (report, limited) =
            within_blob_limit(ActivityReport::Completed(payloads(200)), &limits);
        assert_eq!(
            failure_message(&report),
            Some("Complete result exceeds size limit.")
        );
        assert!(!limited.reported(false).cancel_requested);
        let (report, _) = within_blob_limit(ActivityReport::Canceled(payloads(200)), &limits);
        assert_eq!(
            failure_message(&report),
            Some("Cancel details exceed size limit.")
        );
        let (report, limited) =
            within_blob_limit(ActivityReport::Failed(None, payloads(200)), &limits);
        assert!(matches!(report, ActivityReport::Failed(None, None)));
        let failures = limited.reported(false).failures;
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].message, "Heartbeat details exceed size limit.");
        // Within the limit nothing changes.
        let (report, limited) = within_blob_limit(ActivityReport::Heartbeat(payloads(50)), &limits);
        assert!(matches!(report, ActivityReport::Heartbeat(Some(_))));
        assert_eq!(limited, Limited::default());
    }

    #[test]
    fn grpc_timeouts_saturate() {
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_grpc_timeout(&format!("{}H", u64::MAX)),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_grpc_timeout(&format!("{}M", u64::MAX / 2)),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_grpc_timeout("S"), None);
        assert_eq!(parse_grpc_timeout(""), None);
    }

    #[test]
    fn request_durations_use_temporals_messages() {
        let mut d = Some(prost_wkt_types::Duration {
            seconds: -1,
            nanos: 0,
        });
        let status = check_request_duration(&mut d, "WorkflowRunTimeoutSeconds").unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "An invalid WorkflowRunTimeoutSeconds is set on request. cause: negative duration"
        );
        let mut huge = Some(prost_wkt_types::Duration {
            seconds: i64::MAX,
            nanos: 999_999_999,
        });
        check_request_duration(&mut huge, "WorkflowRunTimeoutSeconds").unwrap();
        assert_eq!(
            huge.unwrap().seconds,
            sundial_engine::time::MAX_DURATION_SECONDS
        );
    }
}
