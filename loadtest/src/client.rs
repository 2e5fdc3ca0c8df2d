//! The raw public API as the load generator uses it: connecting, deadlines, payloads, command
//! builders and history paging. Nothing here is specific to one server.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use sundial_proto::api::command::v1::{
    Command, CompleteWorkflowExecutionCommandAttributes, ScheduleActivityTaskCommandAttributes,
    StartTimerCommandAttributes, command::Attributes,
};
use sundial_proto::api::common::v1::{
    ActivityType, Payload, Payloads, WorkflowExecution, WorkflowType,
};
use sundial_proto::api::enums::v1::CommandType;
use sundial_proto::api::history::v1::HistoryEvent;
use sundial_proto::api::taskqueue::v1::TaskQueue;
use sundial_proto::workflowservice::workflow_service_client::WorkflowServiceClient;
use sundial_proto::workflowservice::{
    DescribeNamespaceRequest, GetSystemInfoRequest, GetWorkflowExecutionHistoryRequest,
};
use tonic::transport::{Channel, Endpoint};

/// The generated `WorkflowService` client over one HTTP/2 connection.
pub type Client = WorkflowServiceClient<Channel>;

/// Deadline of ordinary (non-polling) RPCs.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline of long polls: servers answer empty a little before it.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(20);

/// Most history pages read for one workflow task.
const MAX_PAGES: usize = 100;

/// Largest message either side may send (histories can be large).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Connects to the frontend at `addr` (loopback addresses only are used by this tool).
pub async fn connect(addr: SocketAddr) -> Result<Client> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    Ok(WorkflowServiceClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

/// `msg` as a request with a `grpc-timeout` of `timeout`.
pub fn request<T>(msg: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(msg);
    request.set_timeout(timeout);
    request
}

/// `msg` as a request with the ordinary deadline.
pub fn rpc<T>(msg: T) -> tonic::Request<T> {
    request(msg, RPC_TIMEOUT)
}

/// True when the server answers `GetSystemInfo` and describes `namespace`: ready for load.
pub async fn is_ready(addr: SocketAddr, namespace: &str) -> bool {
    let Ok(mut client) = connect(addr).await else {
        return false;
    };
    let short = Duration::from_secs(2);
    if client
        .get_system_info(request(GetSystemInfoRequest {}, short))
        .await
        .is_err()
    {
        return false;
    }
    let describe = DescribeNamespaceRequest {
        namespace: namespace.to_string(),
        ..Default::default()
    };
    client
        .describe_namespace(request(describe, short))
        .await
        .is_ok()
}

/// The id of `namespace` (what servers hash, with the workflow id, to pick a shard).
pub async fn namespace_id(client: &mut Client, namespace: &str) -> Result<String> {
    let describe = DescribeNamespaceRequest {
        namespace: namespace.to_string(),
        ..Default::default()
    };
    let response = client
        .describe_namespace(rpc(describe))
        .await
        .with_context(|| format!("describing namespace {namespace}"))?
        .into_inner();
    match response.namespace_info {
        Some(info) if !info.id.is_empty() => Ok(info.id),
        _ => bail!("DescribeNamespace({namespace}) returned no namespace id"),
    }
}

/// A single plain-bytes payload.
pub fn payloads(data: &[u8]) -> Payloads {
    Payloads {
        payloads: vec![Payload {
            metadata: [("encoding".to_string(), b"binary/plain".to_vec())].into(),
            data: data.to_vec(),
            ..Default::default()
        }],
    }
}

/// A normal task queue named `name`.
pub fn task_queue(name: &str) -> TaskQueue {
    TaskQueue {
        name: name.to_string(),
        ..Default::default()
    }
}

/// The workflow type every load-test workflow has.
pub fn workflow_type() -> WorkflowType {
    WorkflowType {
        name: "sundial-loadtest".into(),
    }
}

/// A protobuf duration.
pub fn duration(d: Duration) -> prost_wkt_types::Duration {
    prost_wkt_types::Duration {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn command(command_type: CommandType, attributes: Attributes) -> Command {
    Command {
        command_type: command_type as i32,
        attributes: Some(attributes),
        ..Default::default()
    }
}

/// ScheduleActivityTask on `queue` with a 30 s start-to-close timeout.
pub fn schedule_activity(activity_id: &str, queue: &str, eager: bool) -> Command {
    command(
        CommandType::ScheduleActivityTask,
        Attributes::ScheduleActivityTaskCommandAttributes(ScheduleActivityTaskCommandAttributes {
            activity_id: activity_id.to_string(),
            activity_type: Some(ActivityType {
                name: "sundial-loadtest-activity".into(),
            }),
            task_queue: Some(task_queue(queue)),
            input: Some(payloads(b"activity input")),
            start_to_close_timeout: Some(duration(Duration::from_secs(30))),
            request_eager_execution: eager,
            ..Default::default()
        }),
    )
}

/// StartTimer firing after `fire_after`.
pub fn start_timer(timer_id: &str, fire_after: Duration) -> Command {
    command(
        CommandType::StartTimer,
        Attributes::StartTimerCommandAttributes(StartTimerCommandAttributes {
            timer_id: timer_id.to_string(),
            start_to_fire_timeout: Some(duration(fire_after)),
        }),
    )
}

/// CompleteWorkflowExecution with a small result.
pub fn complete_workflow() -> Command {
    command(
        CommandType::CompleteWorkflowExecution,
        Attributes::CompleteWorkflowExecutionCommandAttributes(
            CompleteWorkflowExecutionCommandAttributes {
                result: Some(payloads(b"done")),
            },
        ),
    )
}

/// Reads the rest of a history whose first page ended with `next_page_token`, appending
/// to `events` (bounded to [`MAX_PAGES`] pages).
pub async fn read_remaining_history(
    client: &mut Client,
    namespace: &str,
    execution: &WorkflowExecution,
    mut next_page_token: Vec<u8>,
    events: &mut Vec<HistoryEvent>,
) -> Result<(), tonic::Status> {
    for _ in 0..MAX_PAGES {
        if next_page_token.is_empty() {
            return Ok(());
        }
        let req = GetWorkflowExecutionHistoryRequest {
            namespace: namespace.to_string(),
            execution: Some(execution.clone()),
            next_page_token,
            ..Default::default()
        };
        let page = client
            .get_workflow_execution_history(rpc(req))
            .await?
            .into_inner();
        events.extend(page.history.map(|h| h.events).unwrap_or_default());
        next_page_token = page.next_page_token;
    }
    Err(tonic::Status::out_of_range(format!(
        "history has more than {MAX_PAGES} pages"
    )))
}
