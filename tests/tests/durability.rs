//! Nothing acknowledged is lost when a real `sundial` process is killed with SIGKILL and
//! restarted on the same SQLite file.

use std::time::{Duration, Instant};

use anyhow::Result;
use sundial_proto::api::enums::v1::{EventType, WorkflowExecutionStatus};
use sundial_tests::Worker;
use sundial_tests::process::{SundialProcess, free_port};
use sundial_tests::worker::{commands, event_types, secs};

use EventType::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_started_before_kill_fires_after_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, log) = (
        dir.path().join("sundial.db"),
        dir.path().join("sundial.log"),
    );
    let port = free_port()?;
    let (mut process, client) = SundialProcess::start_dev(port, &db, &log).await?;
    let mut worker = Worker::new(client);
    let wf = "timer-survives";
    let run_id = worker.start(wf).await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, vec![commands::start_timer("t", secs(3))])
        .await?;
    let timer_started = Instant::now();
    process.kill()?;
    drop(process);

    let (process, client) = SundialProcess::start_dev(port, &db, &log).await?;
    worker.client = client;
    let history = worker.event_types(wf).await?;
    if timer_started.elapsed() < Duration::from_millis(2500) {
        // Restarted well before the timer was due: it must fire from the reloaded timer queue.
        assert_eq!(history.last(), Some(&TimerStarted), "{history:?}");
    }
    let task = match worker
        .try_poll_workflow_task(Duration::from_secs(15))
        .await?
    {
        Some(task) => task,
        None => panic!(
            "no workflow task from the timer after restart; log:\n{}",
            process.logs()
        ),
    };
    assert_eq!(
        task.workflow_execution.clone().unwrap_or_default().run_id,
        run_id
    );
    assert_eq!(
        event_types(&task.history.clone().unwrap_or_default().events)[4..],
        [
            TimerStarted,
            TimerFired,
            WorkflowTaskScheduled,
            WorkflowTaskStarted
        ]
    );
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"ok")])
        .await?;
    let types = worker.event_types(wf).await?;
    assert_eq!(
        types,
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            TimerStarted,
            TimerFired,
            WorkflowTaskScheduled,
            WorkflowTaskStarted,
            WorkflowTaskCompleted,
            WorkflowExecutionCompleted,
        ]
    );
    let info = worker
        .describe(wf)
        .await?
        .workflow_execution_info
        .unwrap_or_default();
    assert_eq!(info.status, WorkflowExecutionStatus::Completed as i32);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_signal_survives_kill() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, log) = (
        dir.path().join("sundial.db"),
        dir.path().join("sundial.log"),
    );
    let port = free_port()?;
    let (mut process, client) = SundialProcess::start_dev(port, &db, &log).await?;
    let mut worker = Worker::new(client);
    let wf = "signal-survives";
    worker.start(wf).await?;
    worker.signal(wf, "acknowledged").await?;
    process.kill()?;
    drop(process);

    let (process, client) = SundialProcess::start_dev(port, &db, &log).await?;
    worker.client = client;
    assert_eq!(
        worker.event_types(wf).await?,
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowExecutionSignaled
        ]
    );
    // The workflow task scheduled before the kill is still handed out.
    let task = match worker
        .try_poll_workflow_task(Duration::from_secs(15))
        .await?
    {
        Some(task) => task,
        None => panic!(
            "the workflow task was lost in the restart; log:\n{}",
            process.logs()
        ),
    };
    assert_eq!(
        event_types(&task.history.clone().unwrap_or_default().events),
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowExecutionSignaled,
            WorkflowTaskStarted
        ]
    );
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"ok")])
        .await?;
    assert_eq!(
        worker.event_types(wf).await?.last(),
        Some(&WorkflowExecutionCompleted)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_file_and_port_does_not_fence_the_first() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (db, log) = (
        dir.path().join("sundial.db"),
        dir.path().join("sundial.log"),
    );
    let port = free_port()?;
    let (_first, client) = SundialProcess::start_dev(port, &db, &log).await?;
    let mut worker = Worker::new(client);
    worker.start("before-the-second").await?;

    // The second fails to bind the port; it must do so before it takes any shard.
    let second_log = dir.path().join("second.log");
    let port_arg = port.to_string();
    let db_arg = db.to_string_lossy().into_owned();
    let args = [
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        &port_arg,
        "--db-filename",
        &db_arg,
    ];
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut second = SundialProcess::spawn(&args, addr, &second_log)?;
    let status = second.wait_exit(Duration::from_secs(30))?;
    assert!(!status.success(), "the second server did not fail");
    assert!(second.logs().contains("binding"), "{}", second.logs());

    // The first still owns its shards: every one of these lands on some shard and commits.
    for i in 0..16 {
        worker.start(&format!("after-the-second-{i}")).await?;
    }
    let info = worker.describe("before-the-second").await?;
    assert_eq!(
        info.workflow_execution_info.unwrap_or_default().status,
        WorkflowExecutionStatus::Running as i32
    );
    Ok(())
}
