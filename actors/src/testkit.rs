//! Drives a [`ShardCore`] in unit tests as the shard actor does, with no actix and no store:
//! tickets are handed out in order, every batch "commits" at once, and what the actor would
//! carry out (replies, dispatches, timers, history appends) is collected for the test to read.

use std::collections::HashMap;

use prost::Message;
use sundial_engine::api::{
    command::v1::{
        Command, CompleteWorkflowExecutionCommandAttributes, command::Attributes as Cmd,
    },
    common::v1::WorkflowType,
    enums::v1::{CommandType, TaskQueueKind},
    history::v1::{History, HistoryEvent, WorkflowExecutionStartedEventAttributes},
    taskqueue::v1::{StickyExecutionAttributes, TaskQueue},
    workflowservice::v1::RespondWorkflowTaskCompletedRequest,
};
use sundial_engine::{Env, StartParams, TaskKind};
use sundial_storage::ShardBatch;

use crate::ops::{
    CompletedWorkflowTask, FromResponse, Request, Response, RunRef, StartWorkflow, Ticket,
    WorkflowTaskStarted, expect,
};
use crate::shard_core::{ReadyTask, ShardCore};
use crate::{Error, Result};

/// Namespace id of every run the kit starts.
pub const NS: &str = "ns";
/// Identity of the worker.
pub const WORKER: &str = "worker-1";
/// The sticky queue of that worker.
pub const STICKY_QUEUE: &str = "worker-1-sticky";

/// A shard core and everything its batches asked for.
pub struct Driver {
    /// The core under test.
    pub core: ShardCore,
    /// The time requests are applied at, unix millis.
    pub now_ms: i64,
    /// Retention given to the engine (as the namespace registry would).
    pub retention_ms: Option<i64>,
    next_ticket: u64,
    runs_made: u64,
    /// Replies released by commits, by ticket.
    answers: HashMap<Ticket, Result<Response>>,
    /// Transfer tasks the commits released, oldest first.
    pub transfer: Vec<ReadyTask>,
    /// Timer tasks the commits armed.
    pub timers: Vec<ReadyTask>,
    /// Every event committed, by run id.
    pub history: HashMap<String, Vec<HistoryEvent>>,
    /// The last batch committed.
    pub last_batch: ShardBatch,
}

impl Default for Driver {
    fn default() -> Self {
        Self::new()
    }
}

impl Driver {
    /// A driver around a fresh shard core at time 1 000.
    pub fn new() -> Self {
        Self {
            core: ShardCore::new(1, 1),
            now_ms: 1_000,
            retention_ms: None,
            next_ticket: 0,
            runs_made: 0,
            answers: HashMap::new(),
            transfer: Vec::new(),
            timers: Vec::new(),
            history: HashMap::new(),
            last_batch: ShardBatch::default(),
        }
    }

    /// The environment a request is applied in (a fresh run id each time, as the actor does).
    pub fn env(&mut self) -> Env {
        self.runs_made += 1;
        Env {
            retention_ms: self.retention_ms,
            ..Env::new(self.now_ms, format!("run-{}", self.runs_made))
        }
    }

    /// Applies a request without committing; returns its (first) ticket.
    pub fn send(&mut self, request: Request) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += request.tickets().max(1);
        let env = self.env();
        self.core.apply(ticket, request, &env);
        ticket
    }

    /// Builds the batch of everything applied and reports it committed, collecting what the
    /// actor would carry out.
    pub fn commit(&mut self) {
        let (batch, effects, touched) = self.core.build_batch(&|_| None);
        for append in &batch.history {
            let events = History::decode(append.batch.events.as_slice())
                .expect("history batch decodes")
                .events;
            let run = self.history.entry(append.key.run_id.clone()).or_default();
            assert_eq!(
                run.last().map_or(1, |e| e.event_id + 1),
                events[0].event_id,
                "history of {} continues without a gap",
                append.key.run_id
            );
            run.extend(events);
        }
        self.last_batch = batch;
        for (ticket, result) in self.core.committed(&touched) {
            self.answers.insert(ticket, result);
        }
        for (ticket, result) in effects.replies {
            self.answers.insert(ticket, result);
        }
        self.transfer.extend(effects.transfer);
        self.timers.extend(effects.timers);
    }

    /// Applies a request, commits, and reads its reply.
    pub fn call<T: FromResponse>(&mut self, request: Request) -> Result<T> {
        let ticket = self.send(request);
        self.commit();
        self.take(ticket)
            .unwrap_or_else(|| Err(Error::Internal(format!("no reply on {ticket:?}"))))
    }

    /// The reply released on `ticket`, if any yet.
    pub fn take<T: FromResponse>(&mut self, ticket: Ticket) -> Option<Result<T>> {
        self.answers.remove(&ticket).map(expect)
    }

    /// True when a reply on `ticket` was released.
    pub fn answered(&self, ticket: Ticket) -> bool {
        self.answers.contains_key(&ticket)
    }

    /// Takes the latest workflow-task dispatch released for `workflow_id`.
    pub fn take_workflow_task(&mut self, workflow_id: &str) -> ReadyTask {
        let i = self
            .transfer
            .iter()
            .rposition(|t| {
                t.task.workflow_id == workflow_id
                    && t.task.task_kind() == TaskKind::DispatchWorkflowTask
            })
            .unwrap_or_else(|| panic!("no workflow task dispatched for {workflow_id}"));
        self.transfer.remove(i)
    }

    /// A worker polls the workflow task dispatched last for `workflow_id` and starts it.
    pub fn poll_workflow_task(&mut self, workflow_id: &str) -> WorkflowTaskStarted {
        let dispatched = self.take_workflow_task(workflow_id);
        self.start_workflow_task(dispatched)
    }

    /// A worker takes a dispatched workflow task and starts it.
    pub fn start_workflow_task(&mut self, dispatched: ReadyTask) -> WorkflowTaskStarted {
        let task = dispatched.task;
        self.call(Request::RecordWorkflowTaskStarted {
            run: run(&task.workflow_id, &task.run_id),
            scheduled_event_id: task.scheduled_event_id,
            attempt: task.attempt,
            request_id: format!("poll-{}", self.next_ticket),
            identity: WORKER.into(),
            build_id: String::new(),
            polled_queue: task.task_queue,
        })
        .expect("workflow task started")
    }

    /// The worker completes a started workflow task with `request`.
    pub fn complete_workflow_task(
        &mut self,
        started: &WorkflowTaskStarted,
        request: RespondWorkflowTaskCompletedRequest,
    ) -> Result<CompletedWorkflowTask> {
        let state = &started.state;
        self.call(Request::CompleteWorkflowTask {
            run: run(&state.workflow_id, &started.run_id),
            scheduled_event_id: started.start.scheduled_event_id,
            attempt: started.start.attempt,
            started: (
                started.start.started_event_id,
                started.start.started_time_ms,
            ),
            request: Box::new(request),
        })
    }

    /// The committed events of a run.
    pub fn events(&self, run_id: &str) -> &[HistoryEvent] {
        self.history.get(run_id).map_or(&[], Vec::as_slice)
    }
}

/// A start of workflow `workflow_id` (type `Wf`, queue `q`) with request id `req-<id>`.
pub fn start(workflow_id: &str) -> StartWorkflow {
    StartWorkflow {
        params: StartParams {
            namespace_id: NS.into(),
            workflow_id: workflow_id.into(),
            run_id: format!("run-of-{workflow_id}"),
            request_id: format!("req-{workflow_id}"),
            attributes: WorkflowExecutionStartedEventAttributes {
                workflow_type: Some(WorkflowType { name: "Wf".into() }),
                task_queue: Some(TaskQueue {
                    name: "q".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            namespace_name: "default".into(),
            ..Default::default()
        },
        reuse_policy: 0,
        conflict_policy: 0,
        eager_identity: None,
    }
}

/// The current run of `workflow_id`.
pub fn current(workflow_id: &str) -> RunRef {
    RunRef {
        namespace_id: NS.into(),
        workflow_id: workflow_id.into(),
        run_id: String::new(),
    }
}

/// Run `run_id` of `workflow_id`.
pub fn run(workflow_id: &str, run_id: &str) -> RunRef {
    RunRef {
        run_id: run_id.into(),
        ..current(workflow_id)
    }
}

/// A workflow-task completion carrying `commands`.
pub fn completion(commands: Vec<Command>) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        commands,
        identity: WORKER.into(),
        ..Default::default()
    }
}

/// [`completion`] asking for the worker's sticky queue.
pub fn sticky_completion(commands: Vec<Command>) -> RespondWorkflowTaskCompletedRequest {
    RespondWorkflowTaskCompletedRequest {
        sticky_attributes: Some(StickyExecutionAttributes {
            worker_task_queue: Some(TaskQueue {
                name: STICKY_QUEUE.into(),
                kind: TaskQueueKind::Sticky as i32,
                normal_name: "q".into(),
            }),
            schedule_to_start_timeout: Some(sundial_engine::time::duration(5_000)),
        }),
        ..completion(commands)
    }
}

/// The CompleteWorkflowExecution command.
pub fn complete_workflow() -> Command {
    Command {
        command_type: CommandType::CompleteWorkflowExecution as i32,
        attributes: Some(Cmd::CompleteWorkflowExecutionCommandAttributes(
            CompleteWorkflowExecutionCommandAttributes::default(),
        )),
        ..Default::default()
    }
}
