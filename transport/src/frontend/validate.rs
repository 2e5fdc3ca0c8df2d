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
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
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

pub(super) fn check_timeouts(
    timeouts: &[Option<&prost_wkt_types::Duration>],
) -> Result<(), Status> {
    for t in timeouts {
        if duration_ms(*t) < 0 {
            return Err(invalid(
                "Invalid timeout: negative durations are not allowed.",
            ));
        }
    }
    Ok(())
}
