//! The scripted worker: concurrent workflow-task and activity-task pollers on one normal task
//! queue. A workflow task is answered by [`Script::decide`] from the history in the poll
//! response (full history, since no sticky queue is used); an activity completes at once.
//! A workflow counts as closed when the server accepts the task completion that closes it.
//!
//! As in Temporal's SDKs, a poller takes a task slot before it polls and hands the task to a
//! new tokio task, so it polls again at once: tasks in progress are bounded by the slots, not
//! by the number of pollers.

use std::sync::Arc;
use std::time::Duration;

use sundial_proto::workflowservice::{
    PollActivityTaskQueueRequest, PollActivityTaskQueueResponse, PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse, RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::client::{self, Client, POLL_TIMEOUT, request, rpc};
use crate::scenario::Script;
use crate::tracker::Tracker;

/// Pause after a failed poll, so an unavailable server is not polled in a hot loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);

/// How the worker polls.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Namespace of every call.
    pub namespace: String,
    /// The (normal) task queue polled for both kinds of task.
    pub task_queue: String,
    /// Concurrent workflow-task pollers.
    pub workflow_pollers: usize,
    /// Concurrent activity-task pollers.
    pub activity_pollers: usize,
    /// Tasks of each kind (workflow, activity) in progress at once.
    pub task_slots: usize,
    /// What workflows do.
    pub script: Script,
}

/// Running pollers; [`Worker::shutdown`] ends them.
pub struct Worker {
    tasks: Vec<JoinHandle<()>>,
    tracker: Arc<Tracker>,
}

impl Worker {
    /// Starts the pollers.
    pub fn spawn(client: &Client, config: WorkerConfig, tracker: Arc<Tracker>) -> Self {
        let config = Arc::new(config);
        let mut tasks = Vec::new();
        let workflow_slots = Arc::new(Semaphore::new(config.task_slots.max(1)));
        for _ in 0..config.workflow_pollers.max(1) {
            let poller = Poller::new(client, &config, &tracker);
            tasks.push(tokio::spawn(poller.workflow_loop(workflow_slots.clone())));
        }
        let activity_slots = Arc::new(Semaphore::new(config.task_slots.max(1)));
        let activity_pollers = if config.script.activities > 0 {
            config.activity_pollers.max(1)
        } else {
            0 // nothing to poll for
        };
        for _ in 0..activity_pollers {
            let poller = Poller::new(client, &config, &tracker);
            tasks.push(tokio::spawn(poller.activity_loop(activity_slots.clone())));
        }
        Worker { tasks, tracker }
    }

    /// Stops every poller: in-flight polls and tasks are cancelled.
    pub async fn shutdown(self) {
        self.tracker.stop();
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// One polling loop's state (cloned into each task it hands off).
#[derive(Clone)]
struct Poller {
    client: Client,
    config: Arc<WorkerConfig>,
    tracker: Arc<Tracker>,
    identity: String,
}

impl Poller {
    fn new(client: &Client, config: &Arc<WorkerConfig>, tracker: &Arc<Tracker>) -> Self {
        Poller {
            client: client.clone(),
            config: config.clone(),
            tracker: tracker.clone(),
            identity: format!("sundial-loadtest@{}", std::process::id()),
        }
    }

    /// Polls workflow tasks until the tracker stops; each task runs on its own tokio task
    /// (aborted with the loop, as they live in its `JoinSet`).
    async fn workflow_loop(mut self, slots: Arc<Semaphore>) {
        let mut running = JoinSet::new();
        while !self.tracker.stopping() {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            while running.try_join_next().is_some() {}
            let req = PollWorkflowTaskQueueRequest {
                namespace: self.config.namespace.clone(),
                task_queue: Some(client::task_queue(&self.config.task_queue)),
                identity: self.identity.clone(),
                ..Default::default()
            };
            match self
                .client
                .poll_workflow_task_queue(request(req, POLL_TIMEOUT))
                .await
            {
                Ok(response) => {
                    let task = response.into_inner();
                    if !task.task_token.is_empty() {
                        self.tracker.schedule_to_start(task.scheduled_time.as_ref());
                        let mut handler = self.clone();
                        running.spawn(async move {
                            handler.workflow_task(task).await;
                            drop(slot);
                        });
                    }
                }
                Err(status) => {
                    self.tracker.error("PollWorkflowTaskQueue", &status);
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        }
    }

    /// Answers one workflow task from its history.
    async fn workflow_task(&mut self, task: PollWorkflowTaskQueueResponse) {
        let execution = task.workflow_execution.clone().unwrap_or_default();
        let mut events = task.history.map(|h| h.events).unwrap_or_default();
        if let Err(status) = client::read_remaining_history(
            &mut self.client,
            &self.config.namespace,
            &execution,
            task.next_page_token,
            &mut events,
        )
        .await
        {
            self.tracker.error("GetWorkflowExecutionHistory", &status);
            return; // the task times out and is retried by the server
        }
        let decision = self.config.script.decide(&events);
        let req = RespondWorkflowTaskCompletedRequest {
            task_token: task.task_token,
            commands: decision.commands,
            identity: self.identity.clone(),
            namespace: self.config.namespace.clone(),
            ..Default::default()
        };
        match self.client.respond_workflow_task_completed(rpc(req)).await {
            Ok(response) => {
                if decision.closes {
                    // WorkflowTaskCompleted and WorkflowExecutionCompleted follow the
                    // started event: the history's length at close.
                    let length = u64::try_from(task.started_event_id + 2).unwrap_or(0);
                    self.tracker.closed(&execution.workflow_id, length);
                }
                for eager in response.into_inner().activity_tasks {
                    self.activity_task(eager).await;
                }
            }
            Err(status) => self.tracker.error("RespondWorkflowTaskCompleted", &status),
        }
    }

    /// Polls activity tasks until the tracker stops; each task runs on its own tokio task.
    async fn activity_loop(mut self, slots: Arc<Semaphore>) {
        let mut running = JoinSet::new();
        while !self.tracker.stopping() {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            while running.try_join_next().is_some() {}
            let req = PollActivityTaskQueueRequest {
                namespace: self.config.namespace.clone(),
                task_queue: Some(client::task_queue(&self.config.task_queue)),
                identity: self.identity.clone(),
                ..Default::default()
            };
            match self
                .client
                .poll_activity_task_queue(request(req, POLL_TIMEOUT))
                .await
            {
                Ok(response) => {
                    let task = response.into_inner();
                    if !task.task_token.is_empty() {
                        let mut handler = self.clone();
                        running.spawn(async move {
                            handler.activity_task(task).await;
                            drop(slot);
                        });
                    }
                }
                Err(status) => {
                    self.tracker.error("PollActivityTaskQueue", &status);
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        }
    }

    /// Completes one activity task at once (polled, or handed over eagerly).
    async fn activity_task(&mut self, task: PollActivityTaskQueueResponse) {
        let scheduled = task
            .current_attempt_scheduled_time
            .as_ref()
            .or(task.scheduled_time.as_ref());
        self.tracker.schedule_to_start(scheduled);
        let req = RespondActivityTaskCompletedRequest {
            task_token: task.task_token,
            result: Some(client::payloads(b"activity result")),
            identity: self.identity.clone(),
            namespace: self.config.namespace.clone(),
            ..Default::default()
        };
        if let Err(status) = self.client.respond_activity_task_completed(rpc(req)).await {
            self.tracker.error("RespondActivityTaskCompleted", &status);
        }
    }
}
