//! Fault tests: storage errors injected under the server (`FaultInjectingStore`), shard
//! ownership taken by another node, shards that cannot be acquired. What they check is what
//! matters: every acknowledged workflow completes, exactly once, with a valid history; a shard
//! that cannot serve says so (health) and refuses requests instead of answering wrongly.
//!
//! A separate test binary (`cargo test -p sundial-tests --test faults`): these run longer than
//! the main suite's tests.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sundial_actors::shard_owners::owner_of;
use sundial_proto::api::enums::v1::{EventType, WorkflowExecutionStatus};
use sundial_proto::health::health_check_response::ServingStatus;
use sundial_proto::workflowservice::*;
use sundial_storage::faults::FaultInjectingStore;
use sundial_storage::postgres::{PostgresOptions, PostgresStore};
use sundial_storage::{DynStore, memory::MemoryStore, sqlite::SqliteStore};
use sundial_tests::members::misowned;
use sundial_tests::process::{SundialProcess, free_layout_port};
use sundial_tests::worker::{commands, request, rpc, secs, task_queue};
use sundial_tests::{Client, TestServer, Worker, health};
use tonic::{Code, Status};

/// Longest a test waits for the server to reach a state.
const SETTLE: Duration = Duration::from_secs(30);

/// Waits (bounded) until the server's health is `want`.
async fn health_becomes(server: &TestServer, want: ServingStatus) -> Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        if health(server.addr).await? == want {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "health never became {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::ResourceExhausted | Code::DeadlineExceeded | Code::Unknown
    )
}

/// How long a client keeps retrying one call, as an SDK does within its deadline.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// Calls `f` until it answers something other than a retryable error (for [`RETRY_FOR`]).
async fn with_retries<T, Fut: Future<Output = Result<T, Status>>>(
    mut f: impl FnMut() -> Fut,
) -> Result<T, Status> {
    let deadline = Instant::now() + RETRY_FOR;
    let mut attempt = 0u64;
    loop {
        match f().await {
            Err(status) if retryable(&status) && Instant::now() < deadline => {
                attempt += 1;
                // A client's backoff, as an SDK does it: nothing waits on it.
                tokio::time::sleep(Duration::from_millis(20 * attempt.min(10))).await;
            }
            other => return other,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_that_fail_to_acquire_are_retried_and_health_follows() -> Result<()> {
    let faults = FaultInjectingStore::new(Arc::new(MemoryStore::new()), 1.0, 11);
    faults.set_targets(&["acquire_shard"]);
    let store: DynStore = faults.clone();
    let server = TestServer::start(store, None).await?;
    health_becomes(&server, ServingStatus::NotServing).await?;
    let mut worker = Worker::new(server.client().await?);
    let refused = worker.start("while-down").await.unwrap_err();
    let status = refused.downcast_ref::<Status>().context("a gRPC status")?;
    ensure!(status.code() == Code::Unavailable, "{status:?}");

    // The store comes back: the shards are acquired again without a restart.
    faults.set_rate(0.0);
    health_becomes(&server, ServingStatus::Serving).await?;
    let run_id = worker.start("after-recovery").await?;
    ensure!(!run_id.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_shard_stops_serving_instead_of_answering_for_another_owner() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("sundial.db");
    let first = TestServer::start(Arc::new(SqliteStore::open(&path)?), None).await?;
    health_becomes(&first, ServingStatus::Serving).await?;
    let mut worker = Worker::new(first.client().await?);
    worker.start("before-takeover").await?;

    // Another node takes every shard of the same store.
    let second = TestServer::start(Arc::new(SqliteStore::open(&path)?), None).await?;
    health_becomes(&second, ServingStatus::Serving).await?;

    // The first node's next commit is fenced: it must not acknowledge, and it stops serving.
    let mut ids = (0..).map(|i| format!("after-takeover-{i}"));
    let mut fenced = 0;
    for id in ids.by_ref().take(16) {
        match worker.start(&id).await {
            Ok(_) => bail!("{id} was acknowledged by a fenced node"),
            Err(e) => {
                let status = e.downcast_ref::<Status>().context("a gRPC status")?;
                ensure!(status.code() == Code::Unavailable, "{status:?}");
                // The refusal names the owner, as the shard's row records it.
                ensure!(
                    status
                        .message()
                        .ends_with(&format!("is owned by {}", second.addr)),
                    "{status:?}"
                );
                fenced += 1;
            }
        }
    }
    ensure!(fenced == 16);
    health_becomes(&first, ServingStatus::NotServing).await?;
    // The new owner serves everything the old one had.
    let mut on_second = Worker::new(second.client().await?);
    on_second.task_queue = worker.task_queue.clone();
    on_second.describe("before-takeover").await?;
    on_second.start("on-the-new-owner").await?;
    Ok(())
}

/// Workflows of the load test (one activity, then complete); `SUNDIAL_FAULT_WORKFLOWS`
/// overrides it (`scripts/faults.sh` runs longer schedules).
fn workflows() -> usize {
    env_or("SUNDIAL_FAULT_WORKFLOWS", 200)
}

/// The share of storage calls that fail (`SUNDIAL_FAULT_RATE`, default 0.05).
fn fault_rate() -> f64 {
    env_or("SUNDIAL_FAULT_RATE", 0.05)
}

/// The seed of the fault schedule (`SUNDIAL_FAULT_SEED`), printed so a failure can be repeated.
fn fault_seed() -> u64 {
    env_or("SUNDIAL_FAULT_SEED", 2024)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Answers workflow tasks until `done`: schedule the activity, then complete.
async fn workflow_poller(mut worker: Worker, done: Arc<AtomicBool>) -> Result<()> {
    while !done.load(Ordering::Relaxed) {
        let poll = PollWorkflowTaskQueueRequest {
            namespace: worker.namespace.clone(),
            task_queue: Some(task_queue(&worker.task_queue)),
            identity: worker.identity.clone(),
            ..Default::default()
        };
        let task = match worker
            .client
            .poll_workflow_task_queue(request(poll, Duration::from_secs(3)))
            .await
        {
            Ok(r) => r.into_inner(),
            // A poll past its own deadline (the client gave up first) is polled again, as
            // an SDK's poller does.
            Err(s) if retryable(&s) || s.code() == Code::Cancelled => continue,
            Err(s) => bail!("poll: {s:?}"),
        };
        if task.task_token.is_empty() {
            continue;
        }
        let events = task.history.map(|h| h.events).unwrap_or_default();
        let has = |t: EventType| events.iter().any(|e| e.event_type == t as i32);
        let commands = if has(EventType::ActivityTaskCompleted) {
            vec![commands::complete_workflow(b"done")]
        } else if !has(EventType::ActivityTaskScheduled) {
            vec![commands::schedule_activity(
                "a",
                &worker.task_queue,
                secs(3),
            )]
        } else {
            Vec::new()
        };
        let respond = RespondWorkflowTaskCompletedRequest {
            task_token: task.task_token,
            commands,
            identity: worker.identity.clone(),
            namespace: worker.namespace.clone(),
            ..Default::default()
        };
        let client = worker.client.clone();
        settle("respond workflow task", || {
            let mut client = client.clone();
            let respond = respond.clone();
            async move { client.respond_workflow_task_completed(rpc(respond)).await }
        })
        .await?;
    }
    Ok(())
}

/// A worker's response, retried; NotFound means an earlier attempt was applied after all (an
/// ambiguous failure) or the task timed out, and counts as settled.
async fn settle<T, Fut: Future<Output = Result<T, Status>>>(
    what: &str,
    f: impl FnMut() -> Fut,
) -> Result<()> {
    match with_retries(f).await {
        Ok(_) => Ok(()),
        Err(s) if s.code() == Code::NotFound => Ok(()),
        Err(s) => bail!("{what}: {s:?}"),
    }
}

/// Completes activity tasks until `done`.
async fn activity_poller(mut worker: Worker, done: Arc<AtomicBool>) -> Result<()> {
    while !done.load(Ordering::Relaxed) {
        let poll = PollActivityTaskQueueRequest {
            namespace: worker.namespace.clone(),
            task_queue: Some(task_queue(&worker.task_queue)),
            identity: worker.identity.clone(),
            ..Default::default()
        };
        let task = match worker
            .client
            .poll_activity_task_queue(request(poll, Duration::from_secs(3)))
            .await
        {
            Ok(r) => r.into_inner(),
            // A poll past its own deadline (the client gave up first) is polled again, as
            // an SDK's poller does.
            Err(s) if retryable(&s) || s.code() == Code::Cancelled => continue,
            Err(s) => bail!("poll activity: {s:?}"),
        };
        if task.task_token.is_empty() {
            continue;
        }
        let respond = RespondActivityTaskCompletedRequest {
            task_token: task.task_token,
            result: Some(sundial_tests::worker::payloads(b"result")),
            identity: worker.identity.clone(),
            namespace: worker.namespace.clone(),
            ..Default::default()
        };
        let client = worker.client.clone();
        settle("respond activity", || {
            let mut client = client.clone();
            let respond = respond.clone();
            async move { client.respond_activity_task_completed(rpc(respond)).await }
        })
        .await?;
    }
    Ok(())
}

/// The status of the current run of `workflow_id`, read with retries.
async fn status_of(client: &Client, workflow_id: &str) -> Result<(i32, String)> {
    let describe = DescribeWorkflowExecutionRequest {
        namespace: "default".into(),
        execution: Some(sundial_tests::worker::execution(workflow_id, "")),
    };
    let response = with_retries(|| {
        let mut client = client.clone();
        let describe = describe.clone();
        async move { client.describe_workflow_execution(rpc(describe)).await }
    })
    .await?
    .into_inner();
    let info = response.workflow_execution_info.context("no info")?;
    let run_id = info.execution.map(|e| e.run_id).unwrap_or_default();
    Ok((info.status, run_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_storage_errors_lose_nothing_and_repeat_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let sqlite: DynStore = Arc::new(SqliteStore::open(&dir.path().join("sundial.db"))?);
    let (rate, seed) = (fault_rate(), fault_seed());
    eprintln!(
        "fault schedule: rate {rate}, seed {seed}, {} workflows",
        workflows()
    );
    let faults = FaultInjectingStore::new(sqlite, 0.0, seed);
    let server = TestServer::start(faults.clone(), Some(dir)).await?;
    health_becomes(&server, ServingStatus::Serving).await?;
    faults.set_rate(rate);

    let worker = Worker::new(server.client().await?);
    let done = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for _ in 0..2 {
        pollers.push(tokio::spawn(workflow_poller(worker.clone(), done.clone())));
        pollers.push(tokio::spawn(activity_poller(worker.clone(), done.clone())));
    }

    // Every start is retried with its request id until acknowledged (dedupe makes that safe).
    let mut acknowledged = HashMap::new();
    for i in 0..workflows() {
        let id = format!("faulty-{i}");
        let mut start = worker.start_request(&id);
        start.workflow_task_timeout = Some(secs(2));
        let run_id = start_until_acknowledged(&worker, start).await?;
        acknowledged.insert(id, run_id);
    }

    // Every acknowledged workflow completes (still under injected faults).
    let deadline = Instant::now() + Duration::from_secs(180 + workflows() as u64 / 10);
    all_complete(&worker, &acknowledged, deadline).await?;
    done.store(true, Ordering::Relaxed);
    for poller in pollers {
        poller.await??;
    }
    eprintln!("{} storage faults injected", faults.injected());
    ensure!(
        rate == 0.0 || faults.injected() > 0,
        "no fault was injected"
    );

    // Histories are valid and nothing happened twice.
    faults.set_rate(0.0);
    valid_histories(&worker, &acknowledged).await?;
    Ok(())
}

/// Starts a workflow, retried with its request id until acknowledged (dedupe makes that safe);
/// answers the run id.
async fn start_until_acknowledged(
    worker: &Worker,
    start: StartWorkflowExecutionRequest,
) -> Result<String> {
    let id = start.workflow_id.clone();
    let client = worker.client.clone();
    let response = with_retries(|| {
        let mut client = client.clone();
        let start = start.clone();
        async move { client.start_workflow_execution(rpc(start)).await }
    })
    .await
    .with_context(|| format!("starting {id}"))?
    .into_inner();
    Ok(response.run_id)
}

/// Starts `workflow_id` with a signal (`SignalWithStartWorkflowExecution`, signal `go`),
/// retried with the same request id until acknowledged; answers the run id.
async fn signal_with_start_until_acknowledged(
    worker: &Worker,
    workflow_id: &str,
) -> Result<String> {
    let start = worker.start_request(workflow_id);
    let request = SignalWithStartWorkflowExecutionRequest {
        namespace: start.namespace,
        workflow_id: start.workflow_id,
        workflow_type: start.workflow_type,
        task_queue: start.task_queue,
        input: start.input,
        workflow_task_timeout: start.workflow_task_timeout,
        identity: start.identity,
        request_id: start.request_id,
        signal_name: "go".into(),
        ..Default::default()
    };
    let client = worker.client.clone();
    let response = with_retries(|| {
        let mut client = client.clone();
        let request = request.clone();
        async move {
            client
                .signal_with_start_workflow_execution(rpc(request))
                .await
        }
    })
    .await
    .with_context(|| format!("signal-with-start of {workflow_id}"))?
    .into_inner();
    Ok(response.run_id)
}

/// Signals `workflow_id` (signal `more`), retried with the same request id; true once
/// acknowledged, false when the workflow had completed first (`NotFound`).
async fn signal_until_acknowledged(worker: &Worker, workflow_id: &str) -> Result<bool> {
    let request = SignalWorkflowExecutionRequest {
        namespace: worker.namespace.clone(),
        workflow_execution: Some(sundial_tests::worker::execution(workflow_id, "")),
        signal_name: "more".into(),
        identity: worker.identity.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let client = worker.client.clone();
    match with_retries(|| {
        let mut client = client.clone();
        let request = request.clone();
        async move { client.signal_workflow_execution(rpc(request)).await }
    })
    .await
    {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::NotFound => Ok(false),
        Err(s) => Err(s).with_context(|| format!("signalling {workflow_id}")),
    }
}

/// Every acknowledged signal is in its workflow's history exactly once: `go` (sent with the
/// start) in every one, `more` where `signalled` says it was acknowledged (and never twice).
async fn signals_exactly_once(
    worker: &Worker,
    acknowledged: &HashMap<String, String>,
    signalled: &HashMap<String, bool>,
) -> Result<()> {
    let mut reader = worker.clone();
    for id in acknowledged.keys() {
        let events = reader.history(id).await?;
        let count = |name: &str| {
            events
                .iter()
                .filter(|e| {
                    matches!(
                        &e.attributes,
                        Some(sundial_proto::api::history::v1::history_event::Attributes::WorkflowExecutionSignaledEventAttributes(a))
                            if a.signal_name == name
                    )
                })
                .count()
        };
        ensure!(
            count("go") == 1,
            "{id}: signal go appears {} times",
            count("go")
        );
        let more = count("more");
        if signalled.get(id).copied().unwrap_or(false) {
            ensure!(
                more == 1,
                "{id}: acknowledged signal more appears {more} times"
            );
        } else {
            ensure!(more <= 1, "{id}: signal more appears {more} times");
        }
    }
    Ok(())
}

/// Waits (until `deadline`) for every acknowledged workflow to complete, as the run its start
/// was acknowledged with.
async fn all_complete(
    worker: &Worker,
    acknowledged: &HashMap<String, String>,
    deadline: Instant,
) -> Result<()> {
    for (id, run_id) in acknowledged {
        loop {
            let (status, current) = status_of(&worker.client, id).await?;
            ensure!(
                current == *run_id,
                "{id}: run {current}, acknowledged {run_id}"
            );
            if status == WorkflowExecutionStatus::Completed as i32 {
                break;
            }
            ensure!(
                status == WorkflowExecutionStatus::Running as i32,
                "{id} closed with status {status}"
            );
            ensure!(Instant::now() < deadline, "{id} did not complete");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Every acknowledged workflow's history is valid (contiguous event ids) and nothing in it
/// happened twice: one start, one activity scheduled and completed, one completion.
async fn valid_histories(worker: &Worker, acknowledged: &HashMap<String, String>) -> Result<()> {
    let mut reader = worker.clone();
    for id in acknowledged.keys() {
        let events = reader.history(id).await?;
        for (i, e) in events.iter().enumerate() {
            ensure!(e.event_id == i as i64 + 1, "{id}: event ids not contiguous");
        }
        let count = |t: EventType| events.iter().filter(|e| e.event_type == t as i32).count();
        ensure!(
            events.first().map(|e| e.event_type)
                == Some(EventType::WorkflowExecutionStarted as i32)
        );
        ensure!(
            events.last().map(|e| e.event_type)
                == Some(EventType::WorkflowExecutionCompleted as i32)
        );
        ensure!(
            count(EventType::WorkflowExecutionStarted) == 1,
            "{id}: started twice"
        );
        ensure!(
            count(EventType::WorkflowExecutionCompleted) == 1,
            "{id}: completed twice"
        );
        ensure!(
            count(EventType::ActivityTaskScheduled) == 1,
            "{id}: activity scheduled twice"
        );
        ensure!(
            count(EventType::ActivityTaskCompleted) == 1,
            "{id}: activity completed twice"
        );
    }
    Ok(())
}

/// Where the member-fault test's processes log: a temporary directory (removed with the
/// guard), or one kept after the test when `SUNDIAL_KEEP_LOGS` is set, to read what the
/// members did.
fn logs_dir() -> Result<(Option<tempfile::TempDir>, std::path::PathBuf)> {
    let dir = tempfile::tempdir()?;
    if std::env::var_os("SUNDIAL_KEEP_LOGS").is_some() {
        return Ok((None, dir.keep()));
    }
    let path = dir.path().to_path_buf();
    Ok((Some(dir), path))
}

/// Shards of the member-fault test: enough that each of three members owns some.
const MEMBER_SHARDS: i32 = 8;
/// How soon after the last fault healed every shard must be owned again.
const OWNED_AGAIN_WITHIN: Duration = Duration::from_secs(10);

/// One process of the member-fault deployment: `start-dev` on `ip` (dev layout from `port`)
/// running `role` on the PostgreSQL database `url`, started again with the same arguments.
struct Member {
    args: Vec<String>,
    log: std::path::PathBuf,
    frontend: std::net::SocketAddr,
    process: SundialProcess,
}

impl Member {
    fn start(dir: &std::path::Path, url: &str, ip: &str, port: u16, role: &str) -> Result<Self> {
        let args: Vec<String> = [
            "server",
            "start-dev",
            "--ip",
            ip,
            "--port",
            &port.to_string(),
            "--database-url",
            url,
            "--num-history-shards",
            &MEMBER_SHARDS.to_string(),
            "--services",
            role,
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let log = dir.join(format!("{role}-{ip}.log"));
        let frontend = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let process = SundialProcess::spawn(&args, frontend, &log)?;
        Ok(Self {
            args,
            log,
            frontend,
            process,
        })
    }

    fn restart(&mut self) -> Result<()> {
        self.process = SundialProcess::spawn(&self.args, self.frontend, &self.log)?;
        Ok(())
    }
}

/// Waits until every shard's row names its owner by rendezvous hashing over `members`;
/// answers how long that took.
async fn owned_by(store: &DynStore, members: &[String], within: Duration) -> Result<Duration> {
    let started = Instant::now();
    loop {
        let wrong = misowned(store, MEMBER_SHARDS, members).await?;
        if wrong.is_empty() {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < within,
            "after {within:?} these shards are not owned by their member of {members:?}: {wrong:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every shard's range id, by shard id.
async fn range_ids(store: &DynStore) -> Result<Vec<i64>> {
    let mut ranges = Vec::new();
    for shard_id in 1..=MEMBER_SHARDS {
        ranges.push(store.get_shard(shard_id).await?.map_or(0, |r| r.range_id));
    }
    Ok(ranges)
}

/// Three history members over PostgreSQL under load, through a fault schedule: one is stopped
/// (SIGSTOP) past failure detection while the others take its shards, then continued (the
/// zombie owner must not commit: the store fences it); one is killed (-9) and started again;
/// one's gossip is cut off (nftables drops its UDP; its store stays reachable) and healed;
/// then every member is restarted in turn (SIGTERM, start). Each workflow is started with a
/// signal and signalled once more. Afterwards every acknowledged start completed, exactly
/// once, with a valid history, every acknowledged signal is in it exactly once, and every shard
/// was owned again within
/// [`OWNED_AGAIN_WITHIN`] of the last fault healing. `SUNDIAL_FAULT_SEED` picks the order of
/// the victims; `SUNDIAL_FAULT_WORKFLOWS` the load (`scripts/faults.sh` runs longer ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_member_faults_lose_nothing_and_repeat_nothing() -> Result<()> {
    use sundial_testdb::postgres as pg;
    let (_dir, logs) = logs_dir()?;
    let server = sundial_tests::databases::postgres()?;
    let database = sundial_tests::databases::fresh_database();
    let url = format!(
        "postgres://{}:{}@{}/{database}",
        pg::USER,
        pg::PASSWORD,
        server.address()
    );
    let seed = fault_seed();
    let port = free_layout_port()?;
    eprintln!(
        "member faults: seed {seed}, {} workflows, logs in {}",
        workflows(),
        logs.as_path().display()
    );
    let mut frontend = Member::start(logs.as_path(), &url, "127.0.0.1", port, "frontend,matching")?;
    let client = frontend.process.wait_ready().await?;
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:{}", port + 1)).collect();
    let mut history = Vec::new();
    for ip in ips {
        history.push(Member::start(logs.as_path(), &url, ip, port, "history")?);
    }
    let store: DynStore = Arc::new(
        PostgresStore::open(&PostgresOptions {
            connect_addr: server.address(),
            database_name: database.clone(),
            user: pg::USER.into(),
            password: pg::PASSWORD.into(),
            ..Default::default()
        })
        .await?,
    );
    owned_by(&store, &members, SETTLE).await?;

    let worker = Worker::new(client);
    let done = Arc::new(AtomicBool::new(false));
    let mut pollers = Vec::new();
    for _ in 0..2 {
        pollers.push(tokio::spawn(workflow_poller(worker.clone(), done.clone())));
        pollers.push(tokio::spawn(activity_poller(worker.clone(), done.clone())));
    }
    // Starts go on through the schedule, each retried with its request id until acknowledged.
    let (count_tx, mut count) = tokio::sync::watch::channel(0usize);
    let starter = {
        let worker = worker.clone();
        tokio::spawn(async move {
            let mut acknowledged = HashMap::new();
            let mut signalled = HashMap::new();
            for i in 0..workflows() {
                let id = format!("member-faults-{i}");
                let run_id = signal_with_start_until_acknowledged(&worker, &id).await?;
                acknowledged.insert(id.clone(), run_id);
                signalled.insert(id.clone(), signal_until_acknowledged(&worker, &id).await?);
                let _ = count_tx.send(acknowledged.len());
            }
            Ok::<_, anyhow::Error>((acknowledged, signalled))
        })
    };
    let fifth = (workflows() / 5).max(1);
    let mut reached = async |n: usize| count.wait_for(|c| *c >= n).await.map(drop);
    let victim = |k: u64| ((seed + k) % 3) as usize;
    // The members but the one at `index`.
    let without = |index: usize| -> Vec<String> {
        (0..3)
            .filter(|i| *i != index)
            .map(|i| members[i].clone())
            .collect()
    };

    // 1. A zombie: stopped until the others own its shards, then continued.
    reached(fifth).await?;
    let zombie = victim(0);
    history[zombie].process.signal("STOP")?;
    let took = owned_by(&store, &without(zombie), SETTLE).await?;
    eprintln!(
        "member {} stopped: its shards taken in {took:?}",
        members[zombie]
    );
    history[zombie].process.signal("CONT")?;
    let took = owned_by(&store, &members, SETTLE).await?;
    eprintln!(
        "member {} continued: shards back in {took:?}",
        members[zombie]
    );
    ensure!(
        took < OWNED_AGAIN_WITHIN,
        "owned again only {took:?} after continuing"
    );

    // 2. A kill -9, and a start again.
    reached(2 * fifth).await?;
    let killed = victim(1);
    history[killed].process.kill()?;
    let took = owned_by(&store, &without(killed), SETTLE).await?;
    eprintln!(
        "member {} killed: its shards taken in {took:?}",
        members[killed]
    );
    history[killed].restart()?;
    let took = owned_by(&store, &members, SETTLE).await?;
    eprintln!(
        "member {} restarted: shards back in {took:?}",
        members[killed]
    );
    ensure!(
        took < OWNED_AGAIN_WITHIN,
        "owned again only {took:?} after the restart"
    );

    // 3. A gossip partition: one member's gossip is cut off, its store is not. It sees only
    // itself while the table lists the others alive, so it changes nothing; the others find
    // it dead and take its shards, which fences it. Healed, it takes its shards back.
    reached(3 * fifth).await?;
    let cut_off = victim(2);
    // The dev layout: a role gossips 100 ports above its gRPC port.
    let gossip = std::net::SocketAddr::new(ips[cut_off].parse()?, port + 101);
    let cut = sundial_tests::netfault::Cut::udp(gossip)?;
    let took = owned_by(&store, &without(cut_off), SETTLE).await?;
    eprintln!(
        "member {} cut off from gossip: its shards taken in {took:?}",
        members[cut_off]
    );
    let noticed = Instant::now();
    while !std::fs::read_to_string(&history[cut_off].log)?.contains("gossip reaches none") {
        ensure!(
            noticed.elapsed() < SETTLE,
            "the member cut off never noticed it was isolated"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cut.heal()?;
    let took = owned_by(&store, &members, SETTLE).await?;
    eprintln!(
        "member {} back in gossip: shards back in {took:?}",
        members[cut_off]
    );
    ensure!(
        took < OWNED_AGAIN_WITHIN,
        "owned again only {took:?} after the partition healed"
    );

    // 4. A rolling restart of every member: each is owned again by the new process (its
    // range id moved on), not only by the same address.
    reached(4 * fifth).await?;
    for k in 0..3 {
        let index = victim(3 + k);
        let ranges = range_ids(&store).await?;
        let member = &mut history[index];
        let status = member.process.terminate(SETTLE)?;
        ensure!(status.success(), "a member stopped with {status}");
        member.restart()?;
        let restarted = Instant::now();
        loop {
            owned_by(&store, &members, SETTLE).await?;
            let now = range_ids(&store).await?;
            let retaken = (1..=MEMBER_SHARDS)
                .filter(|s| owner_of(*s, &members) == Some(members[index].as_str()))
                .all(|s| now[(s - 1) as usize] > ranges[(s - 1) as usize]);
            if retaken {
                break;
            }
            ensure!(
                restarted.elapsed() < SETTLE,
                "the restarted member never took its shards"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = restarted.elapsed();
        eprintln!("rolling restart {k}: shards back in {took:?}");
        ensure!(
            took < OWNED_AGAIN_WITHIN,
            "owned again only {took:?} after a restart"
        );
    }

    let (acknowledged, signalled) = starter.await??;
    let deadline = Instant::now() + Duration::from_secs(180 + workflows() as u64 / 10);
    all_complete(&worker, &acknowledged, deadline).await?;
    done.store(true, Ordering::Relaxed);
    for poller in pollers {
        poller.await??;
    }
    valid_histories(&worker, &acknowledged).await?;
    signals_exactly_once(&worker, &acknowledged, &signalled).await?;
    let signals = signalled.values().filter(|s| **s).count();
    eprintln!(
        "checked: {} starts and {} more signals acknowledged, each in its history once",
        acknowledged.len(),
        signals
    );
    for member in history.iter().chain([&frontend]) {
        let logs = std::fs::read_to_string(&member.log)?;
        ensure!(
            !logs.contains("panicked"),
            "{} panicked",
            member.log.display()
        );
    }
    frontend.process.kill()?;
    Ok(())
}
