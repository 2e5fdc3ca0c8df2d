//! One run of one scenario against one server: start workflows at a rate or with a fixed
//! number in flight, for a count or a duration, with the scripted worker answering them;
//! then wait (bounded) for every started workflow to close and hand back what was measured.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use sundial_proto::api::common::v1::WorkflowExecution;
use sundial_proto::workflowservice::{
    SignalWorkflowExecutionRequest, StartWorkflowExecutionRequest,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::client::{self, Client, rpc};
use crate::scenario::{IdGenerator, Placement, Scenario, Script};
use crate::tracker::{Observations, Tracker};
use crate::worker::{Worker, WorkerConfig};

/// How starts are paced.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// Starts per second (open loop), with at most `max_in_flight` workflows open.
    Rate(f64),
    /// A fixed number of workflows in flight (closed loop): a new one starts when one closes.
    Concurrency(usize),
}

/// How much is started.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    /// Exactly this many workflows.
    Workflows(u64),
    /// Start for this long.
    Duration(Duration),
}

/// Everything one run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Name of the server in progress lines and reports.
    pub label: String,
    /// The load shape.
    pub scenario: Scenario,
    /// Pacing.
    pub load: Load,
    /// Count or duration.
    pub amount: Amount,
    /// Namespace to run in.
    pub namespace: String,
    /// Where workflow ids land.
    pub placement: Placement,
    /// The server's history shard count (used to pick hot ids).
    pub num_shards: u32,
    /// Concurrent workflow-task pollers.
    pub workflow_pollers: usize,
    /// Concurrent activity-task pollers.
    pub activity_pollers: usize,
    /// Workflow (and activity) tasks the worker runs at once.
    pub task_slots: usize,
    /// Set `request_eager_execution` on scheduled activities.
    pub eager_activities: bool,
    /// Signals each workflow of the `signals` scenario waits for.
    pub signals_per_workflow: u32,
    /// The `timer` scenario's timer.
    pub timer: Duration,
    /// In rate mode, most workflows open at once.
    pub max_in_flight: usize,
    /// Longest time spent starting when `amount` is a count.
    pub max_start_time: Duration,
    /// Longest wait for started workflows to close once starting is over.
    pub drain_timeout: Duration,
    /// Print a progress line on stderr.
    pub progress: bool,
}

impl RunConfig {
    /// A small closed-loop run of `scenario` (handy for tests; adjust fields as needed).
    pub fn new(scenario: Scenario, workflows: u64, concurrency: usize) -> Self {
        RunConfig {
            label: "server".into(),
            scenario,
            load: Load::Concurrency(concurrency),
            amount: Amount::Workflows(workflows),
            namespace: "default".into(),
            placement: scenario.placement(),
            num_shards: 4,
            workflow_pollers: 4,
            activity_pollers: 4,
            task_slots: 100,
            eager_activities: false,
            signals_per_workflow: 5,
            timer: Duration::from_secs(1),
            max_in_flight: 10_000,
            max_start_time: Duration::from_secs(600),
            drain_timeout: Duration::from_secs(60),
            progress: false,
        }
    }
}

/// What one run measured.
#[derive(Debug)]
pub struct RunOutcome {
    /// Workflows whose start succeeded.
    pub started: u64,
    /// Workflows seen to close.
    pub completed: u64,
    /// The throughput window: from the moment workers could poll to the last close.
    pub window: Duration,
    /// Latencies, delays, events and errors.
    pub observations: Observations,
}

/// Runs `config` against the frontend at `addr`.
pub async fn run(addr: SocketAddr, config: &RunConfig) -> Result<RunOutcome> {
    if let Load::Rate(r) = config.load
        && !(r > 0.0 && r.is_finite())
    {
        bail!("--rate must be a positive number, not {r}");
    }
    let mut client = client::connect(addr).await?;
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let prefix = format!("lt-{}-{run_id}", config.scenario);
    let mut ids = match config.placement {
        Placement::Spread => IdGenerator::spread(&prefix),
        Placement::Hot => {
            let ns = client::namespace_id(&mut client, &config.namespace).await?;
            IdGenerator::hot(&prefix, &ns, config.num_shards)
        }
    };
    let task_queue = format!("loadtest-{run_id}");
    let worker_config = WorkerConfig {
        namespace: config.namespace.clone(),
        task_queue: task_queue.clone(),
        workflow_pollers: config.workflow_pollers,
        activity_pollers: config.activity_pollers,
        task_slots: config.task_slots,
        script: Script::new(
            config.scenario,
            &task_queue,
            config.timer,
            config.signals_per_workflow,
            config.eager_activities,
        ),
    };
    let tracker = Arc::new(Tracker::new());
    let backlog = config.scenario.is_backlog();
    let mut worker =
        (!backlog).then(|| Worker::spawn(&client, worker_config.clone(), tracker.clone()));
    let progress = config
        .progress
        .then(|| tokio::spawn(progress_loop(config.label.clone(), tracker.clone())));
    let mut window_start = Instant::now();

    let (limit, start_for) = match config.amount {
        Amount::Workflows(n) => (n, config.max_start_time),
        Amount::Duration(d) => (u64::MAX, d),
    };
    let stop_starting = tokio::time::Instant::now() + start_for;
    let permits = Arc::new(Semaphore::new(match config.load {
        Load::Concurrency(c) => c.max(1),
        Load::Rate(_) => config.max_in_flight.max(1),
    }));
    let mut ticker = match config.load {
        Load::Rate(r) => {
            let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / r));
            t.set_missed_tick_behavior(MissedTickBehavior::Burst);
            Some(t)
        }
        Load::Concurrency(_) => None,
    };
    let signals = if config.scenario == Scenario::Signals {
        config.signals_per_workflow
    } else {
        0
    };
    let mut starters = JoinSet::new();
    let mut issued = 0u64;
    while issued < limit {
        if let Some(t) = ticker.as_mut()
            && tokio::time::timeout_at(stop_starting, t.tick())
                .await
                .is_err()
        {
            break;
        }
        let permit =
            match tokio::time::timeout_at(stop_starting, permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                _ => break,
            };
        let workflow_id = ids.next_id();
        let req = start_request(&config.namespace, &workflow_id, &task_queue);
        tracker.starting(&workflow_id, Some(permit));
        issued += 1;
        starters.spawn(start_one(
            client.clone(),
            req,
            tracker.clone(),
            signals,
            backlog,
        ));
        while starters.try_join_next().is_some() {}
    }
    let drain_deadline = tokio::time::Instant::now() + config.drain_timeout;
    // Starts (and their signals) finish first, bounded by the drain deadline.
    let _ = tokio::time::timeout_at(drain_deadline, async {
        while starters.join_next().await.is_some() {}
    })
    .await;
    if backlog {
        window_start = Instant::now();
        worker = Some(Worker::spawn(&client, worker_config, tracker.clone()));
    }
    let drain_deadline = tokio::time::Instant::now() + config.drain_timeout;
    tracker.wait_idle(drain_deadline).await;
    if let Some(worker) = worker {
        worker.shutdown().await;
    }
    tracker.stop();
    starters.abort_all();
    if let Some(p) = progress {
        p.abort();
        let _ = p.await;
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    let observations = tracker.take_observations();
    let window_end = observations.last_close.unwrap_or_else(Instant::now);
    Ok(RunOutcome {
        started: tracker.started(),
        completed: tracker.completed(),
        window: window_end.saturating_duration_since(window_start),
        observations,
    })
}

/// A start request for `workflow_id` on `task_queue`, eager workflow start off.
fn start_request(
    namespace: &str,
    workflow_id: &str,
    task_queue: &str,
) -> StartWorkflowExecutionRequest {
    StartWorkflowExecutionRequest {
        namespace: namespace.to_string(),
        workflow_id: workflow_id.to_string(),
        workflow_type: Some(client::workflow_type()),
        task_queue: Some(client::task_queue(task_queue)),
        input: Some(client::payloads(b"workflow input")),
        workflow_task_timeout: Some(client::duration(Duration::from_secs(10))),
        identity: format!("sundial-loadtest@{}", std::process::id()),
        request_id: uuid::Uuid::new_v4().to_string(),
        request_eager_execution: false,
        ..Default::default()
    }
}

/// Starts one workflow, then sends it `signals` signals one after another.
async fn start_one(
    mut client: Client,
    req: StartWorkflowExecutionRequest,
    tracker: Arc<Tracker>,
    signals: u32,
    backlog: bool,
) {
    let workflow_id = req.workflow_id.clone();
    let namespace = req.namespace.clone();
    let identity = req.identity.clone();
    let run_id = match client.start_workflow_execution(rpc(req)).await {
        Ok(response) => response.into_inner().run_id,
        Err(status) => {
            tracker.error("StartWorkflowExecution", &status);
            tracker.start_failed(&workflow_id);
            return;
        }
    };
    if backlog {
        tracker.release_permit(&workflow_id);
    }
    for k in 0..signals {
        if tracker.stopping() {
            return;
        }
        let req = SignalWorkflowExecutionRequest {
            namespace: namespace.clone(),
            workflow_execution: Some(WorkflowExecution {
                workflow_id: workflow_id.clone(),
                run_id: run_id.clone(),
            }),
            signal_name: "sundial-loadtest-signal".into(),
            input: Some(client::payloads(&k.to_le_bytes())),
            identity: identity.clone(),
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        };
        if let Err(status) = client.signal_workflow_execution(rpc(req)).await {
            tracker.error("SignalWorkflowExecution", &status);
        }
    }
}

/// Prints progress on stderr: every second on a terminal (one rewritten line), else every 10 s.
async fn progress_loop(label: String, tracker: Arc<Tracker>) {
    let tty = std::io::stderr().is_terminal();
    let every = Duration::from_secs(if tty { 1 } else { 10 });
    let mut last = (Instant::now(), 0u64);
    loop {
        tokio::time::sleep(every).await;
        let (now, completed) = (Instant::now(), tracker.completed());
        let rate = (completed - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, completed);
        let line = format!(
            "[{label}] {:>5.0}s started {} closed {} in flight {} errors {} | {rate:.0} wf/s",
            now.duration_since(tracker.epoch()).as_secs_f64(),
            tracker.started(),
            completed,
            tracker.in_flight(),
            tracker.failed_rpcs(),
        );
        if tty {
            eprint!("\r{line:<100}");
        } else {
            eprintln!("{line}");
        }
    }
}
