//! Several history processes: the shards are spread over the live history members by
//! rendezvous hashing of their addresses, and the members that remain take the shards of one
//! that is gone.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sundial_actors::shard_owners::owner_of;
use sundial_proto::health::health_check_response::ServingStatus;
use sundial_proto::workflowservice::RegisterNamespaceRequest;
use sundial_storage::DynStore;
use sundial_storage::sqlite::SqliteStore;
use sundial_tests::members::misowned;
use sundial_tests::process::{SundialProcess, free_layout_port};
use sundial_tests::worker::{commands, rpc, secs};
use sundial_tests::{Worker, health};

const SHARDS: i32 = 16;

/// `sundial server start-dev` on `ip` (the dev layout from `port`) running `role`, on `db`.
fn spawn(dir: &Path, db: &Path, ip: &str, port: u16, role: &str) -> Result<SundialProcess> {
    let args: Vec<std::ffi::OsString> = vec![
        "server".into(),
        "start-dev".into(),
        "--ip".into(),
        ip.into(),
        "--port".into(),
        port.to_string().into(),
        "--db-filename".into(),
        db.as_os_str().to_owned(),
        "--num-history-shards".into(),
        SHARDS.to_string().into(),
        "--services".into(),
        role.into(),
    ];
    let frontend = SocketAddr::from(([127, 0, 0, 1], port));
    SundialProcess::spawn(&args, frontend, &dir.join(format!("{role}-{ip}.log")))
}

/// Waits until every shard's row names the owner rendezvous hashing gives over `members`
/// and the frontend is SERVING; answers how long that took.
async fn wait_owned_by(
    db: &Path,
    frontend: SocketAddr,
    members: &[String],
    within: Duration,
    logs: impl Fn() -> String,
) -> Result<Duration> {
    let store: DynStore =
        std::sync::Arc::new(SqliteStore::open(db).context("opening the SQLite file")?);
    let started = Instant::now();
    loop {
        let wrong = misowned(&store, SHARDS, members).await?;
        if wrong.is_empty() && health(frontend).await? == ServingStatus::Serving {
            return Ok(started.elapsed());
        }
        if started.elapsed() > within {
            bail!(
                "after {within:?} these shards are not owned by their member of {members:?}: \
                 {wrong:?}; logs:\n{}",
                logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `count` workflows and runs each to completion through the frontend.
async fn run_workflows(worker: &mut Worker, prefix: &str, count: usize) -> Result<()> {
    for i in 0..count {
        worker.start(&format!("{prefix}-{i}")).await?;
    }
    for _ in 0..count {
        let task = worker.poll_workflow_task().await?;
        worker
            .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"done")])
            .await?;
    }
    Ok(())
}

/// Three history processes share the shards (each owns the shards rendezvous hashing gives
/// it), and workflows on every shard run through one frontend. When one is killed (-9), the
/// two that remain take its shards once gossip counts it dead, and workflows run again. When
/// another is stopped (SIGTERM), it leaves in order: the last one takes every shard at once
/// (within two heartbeats, not the failure-detection window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_members_share_the_shards_and_take_over_from_a_killed_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sundial.db");
    let port = free_layout_port()?;
    let ips = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];
    let members: Vec<String> = ips.iter().map(|ip| format!("{ip}:{}", port + 1)).collect();
    let mut frontend = spawn(dir.path(), &db, "127.0.0.1", port, "frontend")?;
    let client = frontend.wait_ready().await?;
    let mut history = Vec::new();
    for ip in ips {
        history.push(spawn(dir.path(), &db, ip, port, "history")?);
    }
    let _matching = spawn(dir.path(), &db, "127.0.0.1", port, "matching")?;
    let all_logs = || {
        std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                format!("== {}\n{text}", e.path().display())
            })
            .collect::<String>()
    };
    let took = wait_owned_by(
        &db,
        frontend.addr,
        &members,
        Duration::from_secs(60),
        all_logs,
    )
    .await?;
    eprintln!("three members own their shards {took:?} after the frontend served");
    let owners: std::collections::HashSet<&str> =
        (1..=SHARDS).filter_map(|s| owner_of(s, &members)).collect();
    ensure!(owners.len() >= 2, "one member owns every shard: {owners:?}");
    // `sundial cluster members` lists each member with its gossip address and the shards it
    // owns.
    let args: Vec<std::ffi::OsString> = vec![
        "cluster".into(),
        "members".into(),
        "--db-filename".into(),
        db.as_os_str().to_owned(),
    ];
    let (status, listed) = SundialProcess::run_to_exit(
        &args,
        &dir.path().join("members.out"),
        Duration::from_secs(30),
    )?;
    ensure!(status.success(), "cluster members failed:\n{listed}");
    for member in &members {
        let owned = (1..=SHARDS)
            .filter(|s| owner_of(*s, &members) == Some(member))
            .count();
        ensure!(
            listed.lines().any(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                words.first() == Some(&"history")
                    && words.get(1) == Some(&member.as_str())
                    && words
                        .get(2)
                        .is_some_and(|g| g.parse::<std::net::SocketAddr>().is_ok())
                    && words.contains(&"alive")
                    && words.last() == Some(&owned.to_string().as_str())
            }),
            "{member} is not listed alive with its {owned} shards:\n{listed}"
        );
    }
    ensure!(
        listed.contains(&format!("{SHARDS} history shards")),
        "{listed}"
    );

    let mut worker = Worker::new(client);
    run_workflows(&mut worker, "before", 32).await?;

    // The member at 127.0.0.3 goes away without a word. A namespace registered before the
    // others notice is told to the members that answer (the dead one is skipped).
    history[1].kill()?;
    worker
        .client
        .register_namespace(rpc(RegisterNamespaceRequest {
            namespace: "registered-after-a-kill".into(),
            workflow_execution_retention_period: Some(secs(86_400)),
            ..Default::default()
        }))
        .await
        .context("registering a namespace while a member is dead")?;
    let remaining = vec![members[0].clone(), members[2].clone()];
    let took = wait_owned_by(
        &db,
        frontend.addr,
        &remaining,
        Duration::from_secs(60),
        all_logs,
    )
    .await?;
    eprintln!("its shards were taken {took:?} after the kill");
    run_workflows(&mut worker, "after-kill", 32).await?;

    // A workflow waits for its next task while its member leaves.
    worker.start("across-the-leave").await?;
    let stopped = Instant::now();
    let status = history[0].terminate(Duration::from_secs(20))?;
    ensure!(status.success(), "the leaving member exited with {status}");
    let last = vec![members[2].clone()];
    wait_owned_by(&db, frontend.addr, &last, Duration::from_secs(60), all_logs).await?;
    let took = stopped.elapsed();
    eprintln!("the leaver's shards were taken {took:?} after SIGTERM");
    ensure!(
        took < sundial_actors::membership::ALIVE_WINDOW,
        "a planned leave took {took:?}, as long as noticing a dead member"
    );
    // Its task, queued before the leave, starts on the shard's new owner.
    let task = worker.poll_workflow_task().await?;
    ensure!(
        task.workflow_execution
            .as_ref()
            .map(|e| e.workflow_id.as_str())
            == Some("across-the-leave"),
        "{task:?}"
    );
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"done")])
        .await?;
    run_workflows(&mut worker, "after-leave", 32).await?;
    for process in history.iter_mut().chain([&mut frontend]) {
        let _ = process.kill();
    }
    Ok(())
}
