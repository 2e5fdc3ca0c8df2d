//! What a store remembers of its cluster: the id `GetClusterInfo` reports, and the number of
//! history shards it was set up with, which a later server may not change.

use std::time::Duration;

use anyhow::{Result, ensure};
use sundial_proto::health::health_check_response::ServingStatus;
use sundial_proto::workflowservice::GetClusterInfoRequest;
use sundial_tests::process::{SundialProcess, free_layout_port, free_port};
use sundial_tests::scrape::scrape;
use sundial_tests::{Worker, health};

/// A server started with another `--num-history-shards` on a used store refuses to start and
/// says why; with the store's own count it serves, under the same cluster id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_keeps_its_shard_count_and_cluster_id() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, log) = (
        dir.path().join("sundial.db"),
        dir.path().join("sundial.log"),
    );
    let port = free_port()?;

    let (mut first, mut client) = SundialProcess::start_dev(port, &db, &log).await?;
    let info = client
        .get_cluster_info(GetClusterInfoRequest {})
        .await?
        .into_inner();
    ensure!(info.history_shard_count == 4, "{info:?}");
    ensure!(info.cluster_name == "active", "{info:?}");
    ensure!(info.persistence_store == "sqlite", "{info:?}");
    ensure!(uuid_like(&info.cluster_id), "{info:?}");
    first.kill()?;

    let args = SundialProcess::start_dev_args(port, &db, &["--num-history-shards", "8"]);
    let (status, output) = SundialProcess::run_to_exit(&args, &log, Duration::from_secs(30))?;
    ensure!(
        !status.success(),
        "started with another shard count:\n{output}"
    );
    ensure!(
        output
            .contains("--num-history-shards is 8, but this store was set up with 4 history shards"),
        "{output}"
    );

    let (mut again, mut client) = SundialProcess::start_dev(port, &db, &log).await?;
    let later = client
        .get_cluster_info(GetClusterInfoRequest {})
        .await?
        .into_inner();
    ensure!(
        later.cluster_id == info.cluster_id,
        "{info:?} then {later:?}"
    );
    again.kill()?;
    Ok(())
}

fn uuid_like(id: &str) -> bool {
    id.len() == 36 && id.chars().filter(|c| *c == '-').count() == 4
}

/// In a deployment of one process per role, every metric a process exports names its own role
/// in `service_name`, including the store calls it makes for another role's data (the history
/// process reading namespaces, every process keeping its membership row fresh).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_process_tags_its_metrics_with_its_role() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sundial.db");
    let port = free_layout_port()?;
    let mut processes = Vec::new();
    for role in ["history", "matching", "worker", "frontend"] {
        let metrics = free_port()?;
        let metrics_arg = metrics.to_string();
        let extra = ["--services", role, "--metrics-port", &metrics_arg];
        let args = SundialProcess::start_dev_args(port, &db, &extra);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let log = dir.path().join(format!("{role}.log"));
        let process = SundialProcess::spawn(&args, addr, &log)?;
        processes.push((
            role,
            process,
            std::net::SocketAddr::from(([127, 0, 0, 1], metrics)),
        ));
    }
    let client = processes[3].1.wait_ready().await?;
    // A workflow started through the frontend reaches history (which commits it) and matching
    // (which queues its task, no worker polling); the frontend answers once history is known.
    let mut worker = Worker::new(client);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while let Err(e) = worker.start("tagged-by-role").await {
        ensure!(
            std::time::Instant::now() < deadline,
            "start never succeeded: {e:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (role, process, metrics) in &mut processes {
        // Every process calls the store (its membership row, at least): wait for that.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let scraped = loop {
            let scraped = scrape(*metrics).await;
            if let Ok(s) = &scraped
                && !s.find("persistence_requests", &[]).is_empty()
            {
                break scraped?;
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "{role}: no persistence metrics ({scraped:?}); log:\n{}",
                process.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let tagged: Vec<_> = scraped
            .samples
            .iter()
            .filter(|s| s.tags.contains_key("service_name"))
            .collect();
        ensure!(!tagged.is_empty(), "{role}: no sample names a service");
        for sample in tagged {
            ensure!(
                sample.tags["service_name"] == *role,
                "{role} process exported {} {:?}",
                sample.name,
                sample.tags
            );
        }
    }
    for (_, process, _) in &mut processes {
        process.kill()?;
    }
    Ok(())
}

/// A frontend whose history serves but that knows no matching process is not SERVING (its
/// polls would fail): it becomes SERVING once matching has joined, and polls then reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frontend_serves_once_it_reaches_history_and_matching() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("sundial.db");
    let port = free_layout_port()?;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let spawn = |role: &str| {
        let args = SundialProcess::start_dev_args(port, &db, &["--services", role]);
        SundialProcess::spawn(&args, addr, &dir.path().join(format!("{role}.log")))
    };
    let mut history = spawn("history")?;
    let mut frontend = spawn("frontend")?;
    frontend.wait_ready().await?;
    // The history shards serve: their health answers through the frontend alone.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut worker = Worker::new(frontend.wait_ready().await?);
    while let Err(e) = worker.start("before-matching").await {
        ensure!(
            std::time::Instant::now() < deadline,
            "start never succeeded: {e:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(health(addr).await? == ServingStatus::NotServing);

    let mut matching = spawn("matching")?;
    while health(addr).await? != ServingStatus::Serving {
        ensure!(
            std::time::Instant::now() < deadline,
            "the frontend never served; matching log:\n{}",
            matching.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SERVING means a poll through the frontend reaches matching, and gets the task history
    // hands it (once the shard, backing off, offers it again).
    let task = worker.poll_workflow_task().await?;
    ensure!(!task.task_token.is_empty(), "the poll got no task");
    for process in [&mut matching, &mut frontend, &mut history] {
        process.kill()?;
    }
    Ok(())
}

/// The four processes of a deployment, started together on one new SQLite file, all get past
/// opening it: each waits for the others' setup of the file instead of failing with "database
/// is locked". Several rounds, each on a new file. Each process runs as many actor threads as
/// its roles call for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_opening_one_new_sqlite_file_at_once_all_serve() -> Result<()> {
    for round in 0..4 {
        let dir = tempfile::tempdir()?;
        let db = dir.path().join("sundial.db");
        let port = free_layout_port()?;
        let mut processes = Vec::new();
        for role in ["history", "matching", "worker", "frontend"] {
            let args = SundialProcess::start_dev_args(port, &db, &["--services", role]);
            let log = dir.path().join(format!("{role}.log"));
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            processes.push(SundialProcess::spawn(&args, addr, &log)?);
        }
        processes
            .last_mut()
            .expect("four processes")
            .wait_ready()
            .await?;
        // Each prints "Sundial serving <role>" once it has opened the store and bound its port.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        for process in &mut processes {
            while !process.logs().contains("Sundial serving") {
                let exited = process.wait_exit(Duration::from_millis(100)).ok();
                ensure!(
                    exited.is_none() && std::time::Instant::now() < deadline,
                    "round {round}: a process did not serve ({exited:?}); log:\n{}",
                    process.logs()
                );
            }
        }
        // A process without a frontend runs its actors on one thread (history and matching
        // serve their internal API on it); the frontend process keeps one per core.
        let cores = std::thread::available_parallelism()?.get();
        for (process, role) in processes
            .iter()
            .zip(["history", "matching", "worker", "frontend"])
        {
            let want = if role == "frontend" { cores } else { 1 };
            let names = process.thread_names()?;
            let actors = names
                .iter()
                .filter(|n| n.starts_with("sundial-actors"))
                .count();
            ensure!(
                actors == want,
                "round {round}: the {role} process runs {actors} actor threads, not {want}: {names:?}"
            );
        }
        for process in &mut processes {
            process.kill()?;
        }
    }
    Ok(())
}
