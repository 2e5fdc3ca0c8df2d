//! A worker made of the raw generated client: starts workflows, polls and completes workflow
//! and activity tasks, reads histories. No SDK involved, so the tests see the wire as it is.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use sundial_proto::api::command::v1::{
    CancelWorkflowExecutionCommandAttributes, Command, CompleteWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes, StartTimerCommandAttributes, command::Attributes,
};
use sundial_proto::api::common::v1::{
    ActivityType, Payload, Payloads, WorkflowExecution, WorkflowType,
};
use sundial_proto::api::enums::v1::{CommandType, EventType};
use sundial_proto::api::history::v1::HistoryEvent;
use sundial_proto::api::taskqueue::v1::TaskQueue;
use sundial_proto::workflowservice::*;

use crate::server::Client;

/// The namespace every server starts with.
pub const NAMESPACE: &str = "default";

/// Deadline sent with ordinary (non-polling) RPCs.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Deadline sent with long polls: the server answers empty about a second before it.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(10);

/// Most history pages [`Worker::history`] reads before giving up.
const MAX_PAGES: usize = 1000;

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

/// A protobuf duration of whole seconds.
pub fn secs(seconds: i64) -> prost_wkt_types::Duration {
    prost_wkt_types::Duration { seconds, nanos: 0 }
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

/// A workflow execution reference (empty `run_id`: the current run).
pub fn execution(workflow_id: &str, run_id: &str) -> WorkflowExecution {
    WorkflowExecution {
        workflow_id: workflow_id.to_string(),
        run_id: run_id.to_string(),
    }
}

/// The event types of `events`, in order.
pub fn event_types(events: &[HistoryEvent]) -> Vec<EventType> {
    events
        .iter()
        .map(|e| EventType::try_from(e.event_type).unwrap_or(EventType::Unspecified))
        .collect()
}

/// Command builders.
pub mod commands {
    use super::*;

    fn command(command_type: CommandType, attributes: Attributes) -> Command {
        Command {
            command_type: command_type as i32,
            attributes: Some(attributes),
            ..Default::default()
        }
    }

    /// ScheduleActivityTask with a start-to-close timeout.
    pub fn schedule_activity(
        activity_id: &str,
        queue: &str,
        start_to_close: prost_wkt_types::Duration,
    ) -> Command {
        command(
            CommandType::ScheduleActivityTask,
            Attributes::ScheduleActivityTaskCommandAttributes(
                ScheduleActivityTaskCommandAttributes {
                    activity_id: activity_id.to_string(),
                    activity_type: Some(ActivityType {
                        name: "test-activity".into(),
                    }),
                    task_queue: Some(task_queue(queue)),
                    input: Some(payloads(b"activity input")),
                    start_to_close_timeout: Some(start_to_close),
                    ..Default::default()
                },
            ),
        )
    }

    /// StartTimer.
    pub fn start_timer(timer_id: &str, fire_after: prost_wkt_types::Duration) -> Command {
        command(
            CommandType::StartTimer,
            Attributes::StartTimerCommandAttributes(StartTimerCommandAttributes {
                timer_id: timer_id.to_string(),
                start_to_fire_timeout: Some(fire_after),
            }),
        )
    }

    /// CompleteWorkflowExecution with a result.
    pub fn complete_workflow(result: &[u8]) -> Command {
        command(
            CommandType::CompleteWorkflowExecution,
            Attributes::CompleteWorkflowExecutionCommandAttributes(
                CompleteWorkflowExecutionCommandAttributes {
                    result: Some(payloads(result)),
                },
            ),
        )
    }

    /// CancelWorkflowExecution (the workflow's answer to a cancel request).
    pub fn cancel_workflow() -> Command {
        command(
            CommandType::CancelWorkflowExecution,
            Attributes::CancelWorkflowExecutionCommandAttributes(
                CancelWorkflowExecutionCommandAttributes { details: None },
            ),
        )
    }
}

/// A worker on one namespace and task queue, speaking the raw generated client.
#[derive(Clone)]
pub struct Worker {
    /// The client; clone it for calls the helpers do not cover.
    pub client: Client,
    /// Namespace of every call.
    pub namespace: String,
    /// Task queue of workflows started here, and of every poll.
    pub task_queue: String,
    /// Identity reported to the server.
    pub identity: String,
}

impl Worker {
    /// A worker on namespace `default` and a task queue unique to this worker.
    pub fn new(client: Client) -> Self {
        Worker {
            client,
            namespace: NAMESPACE.to_string(),
            task_queue: format!("tq-{}", uuid::Uuid::new_v4()),
            identity: "sundial-tests".to_string(),
        }
    }

    /// A complete start request for `workflow_id` on this worker's queue.
    pub fn start_request(&self, workflow_id: &str) -> StartWorkflowExecutionRequest {
        StartWorkflowExecutionRequest {
            namespace: self.namespace.clone(),
            workflow_id: workflow_id.to_string(),
            workflow_type: Some(WorkflowType {
                name: "test-workflow".into(),
            }),
            task_queue: Some(task_queue(&self.task_queue)),
            input: Some(payloads(b"workflow input")),
            workflow_task_timeout: Some(secs(10)),
            identity: self.identity.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        }
    }

    /// Starts `workflow_id` and returns its run id.
    pub async fn start(&mut self, workflow_id: &str) -> Result<String> {
        let req = self.start_request(workflow_id);
        let response = self
            .client
            .start_workflow_execution(rpc(req))
            .await
            .with_context(|| format!("starting {workflow_id}"))?
            .into_inner();
        ensure!(!response.run_id.is_empty(), "start returned no run id");
        Ok(response.run_id)
    }

    /// Polls for a workflow task for at most `wait`; `None` when none came.
    pub async fn try_poll_workflow_task(
        &mut self,
        wait: Duration,
    ) -> Result<Option<PollWorkflowTaskQueueResponse>> {
        let req = PollWorkflowTaskQueueRequest {
            namespace: self.namespace.clone(),
            task_queue: Some(task_queue(&self.task_queue)),
            identity: self.identity.clone(),
            ..Default::default()
        };
        let response = self
            .client
            .poll_workflow_task_queue(request(req, wait))
            .await
            .context("polling the workflow task queue")?
            .into_inner();
        Ok((!response.task_token.is_empty()).then_some(response))
    }

    /// Polls for a workflow task; an error when none comes within [`POLL_TIMEOUT`].
    pub async fn poll_workflow_task(&mut self) -> Result<PollWorkflowTaskQueueResponse> {
        match self.try_poll_workflow_task(POLL_TIMEOUT).await? {
            Some(task) => Ok(task),
            None => bail!(
                "no workflow task on {} within {POLL_TIMEOUT:?}",
                self.task_queue
            ),
        }
    }

    /// Completes a workflow task with `commands`.
    pub async fn complete_workflow_task(
        &mut self,
        task_token: Vec<u8>,
        commands: Vec<Command>,
    ) -> Result<RespondWorkflowTaskCompletedResponse> {
        let req = RespondWorkflowTaskCompletedRequest {
            task_token,
            commands,
            identity: self.identity.clone(),
            namespace: self.namespace.clone(),
            ..Default::default()
        };
        Ok(self
            .client
            .respond_workflow_task_completed(rpc(req))
            .await?
            .into_inner())
    }

    /// Polls for an activity task; an error when none comes within [`POLL_TIMEOUT`].
    pub async fn poll_activity_task(&mut self) -> Result<PollActivityTaskQueueResponse> {
        let req = PollActivityTaskQueueRequest {
            namespace: self.namespace.clone(),
            task_queue: Some(task_queue(&self.task_queue)),
            identity: self.identity.clone(),
            ..Default::default()
        };
        let response = self
            .client
            .poll_activity_task_queue(request(req, POLL_TIMEOUT))
            .await
            .context("polling the activity task queue")?
            .into_inner();
        ensure!(
            !response.task_token.is_empty(),
            "no activity task on {} within {POLL_TIMEOUT:?}",
            self.task_queue
        );
        Ok(response)
    }

    /// Completes an activity task with `result`.
    pub async fn complete_activity_task(
        &mut self,
        task_token: Vec<u8>,
        result: &[u8],
    ) -> Result<()> {
        let req = RespondActivityTaskCompletedRequest {
            task_token,
            result: Some(payloads(result)),
            identity: self.identity.clone(),
            namespace: self.namespace.clone(),
            ..Default::default()
        };
        self.client
            .respond_activity_task_completed(rpc(req))
            .await?;
        Ok(())
    }

    /// Signals the current run of `workflow_id`.
    pub async fn signal(&mut self, workflow_id: &str, signal_name: &str) -> Result<()> {
        let req = SignalWorkflowExecutionRequest {
            namespace: self.namespace.clone(),
            workflow_execution: Some(execution(workflow_id, "")),
            signal_name: signal_name.to_string(),
            input: Some(payloads(signal_name.as_bytes())),
            identity: self.identity.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        self.client
            .signal_workflow_execution(rpc(req))
            .await
            .with_context(|| format!("signalling {workflow_id}"))?;
        Ok(())
    }

    /// Describes the current run of `workflow_id`.
    pub async fn describe(
        &mut self,
        workflow_id: &str,
    ) -> Result<DescribeWorkflowExecutionResponse> {
        let req = DescribeWorkflowExecutionRequest {
            namespace: self.namespace.clone(),
            execution: Some(execution(workflow_id, "")),
        };
        Ok(self
            .client
            .describe_workflow_execution(rpc(req))
            .await
            .with_context(|| format!("describing {workflow_id}"))?
            .into_inner())
    }

    /// The whole history of the current run of `workflow_id`, read page by page.
    pub async fn history(&mut self, workflow_id: &str) -> Result<Vec<HistoryEvent>> {
        let mut events = Vec::new();
        let mut next_page_token = Vec::new();
        for _ in 0..MAX_PAGES {
            let req = GetWorkflowExecutionHistoryRequest {
                namespace: self.namespace.clone(),
                execution: Some(execution(workflow_id, "")),
                next_page_token,
                ..Default::default()
            };
            let page = self
                .client
                .get_workflow_execution_history(rpc(req))
                .await
                .with_context(|| format!("reading the history of {workflow_id}"))?
                .into_inner();
            events.extend(page.history.map(|h| h.events).unwrap_or_default());
            if page.next_page_token.is_empty() {
                return Ok(events);
            }
            next_page_token = page.next_page_token;
        }
        bail!("history of {workflow_id} has more than {MAX_PAGES} pages")
    }

    /// The event types of the history of `workflow_id`.
    pub async fn event_types(&mut self, workflow_id: &str) -> Result<Vec<EventType>> {
        Ok(event_types(&self.history(workflow_id).await?))
    }
}
