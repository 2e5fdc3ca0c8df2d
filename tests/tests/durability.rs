//! Nothing acknowledged is lost when a real `sundial` process is killed with SIGKILL and
//! restarted on the same SQLite file.

use std::time::{Duration, Instant};

use anyhow::Result;
use sundial_proto::api::enums::v1::{EventType, WorkflowExecutionStatus};
use sundial_tests::Worker;
use sundial_tests::process::{SundialProcess, free_port};
use sundial_tests::worker::{commands, event_types, secs};

use EventType::*;

/// A data directory and port for one test's servers: each start is a process on the same
/// SQLite file, as a restart would be.
struct Site {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    log: std::path::PathBuf,
    port: u16,
}

impl Site {
    fn new() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        Ok(Self {
            db: dir.path().join("sundial.db"),
            log: dir.path().join("sundial.log"),
            port: free_port()?,
            _dir: dir,
        })
    }

    async fn start(&self) -> Result<(SundialProcess, sundial_tests::Client)> {
        SundialProcess::start_dev(self.port, &self.db, &self.log).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_started_before_kill_fires_after_restart() -> Result<()> {
    let site = Site::new()?;
    let (mut process, client) = site.start().await?;
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

    let (process, client) = site.start().await?;
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
    let site = Site::new()?;
    let (mut process, client) = site.start().await?;
    let mut worker = Worker::new(client);
    let wf = "signal-survives";
    worker.start(wf).await?;
    worker.signal(wf, "acknowledged").await?;
    process.kill()?;
    drop(process);

    let (process, client) = site.start().await?;
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
    let site = Site::new()?;
    let (_first, client) = site.start().await?;
    let mut worker = Worker::new(client);
    worker.start("before-the-second").await?;

    // The second fails to bind the port; it must do so before it takes any shard.
    let second_log = site.log.with_file_name("second.log");
    let port_arg = site.port.to_string();
    let db_arg = site.db.to_string_lossy().into_owned();
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
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], site.port));
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

/// The backlog count of the worker's workflow queue.
async fn workflow_backlog(worker: &mut Worker) -> Result<i64> {
    use sundial_proto::api::workflowservice::v1::DescribeTaskQueueRequest;
    let response = worker
        .client
        .describe_task_queue(DescribeTaskQueueRequest {
            namespace: worker.namespace.clone(),
            task_queue: Some(sundial_tests::worker::task_queue(&worker.task_queue)),
            report_stats: true,
            ..Default::default()
        })
        .await?
        .into_inner();
    Ok(response.stats.map_or(0, |s| s.approximate_backlog_count))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matched_task_whose_start_was_never_recorded_is_delivered_after_kill() -> Result<()> {
    let site = Site::new()?;
    let (mut process, client) = site.start().await?;
    let mut worker = Worker::new(client);
    let wf = "matched-never-started";
    let run_id = worker.start(wf).await?;
    // No poller yet: the task goes to the queue's backlog.
    let deadline = Instant::now() + Duration::from_secs(10);
    while workflow_backlog(&mut worker).await? < 1 {
        assert!(
            Instant::now() < deadline,
            "the task never reached the backlog"
        );
        tokio::task::yield_now().await;
    }
    // Another process holds SQLite's write lock: the poll is matched with the task, but the
    // start cannot be recorded, and the poll fails.
    let locker = rusqlite::Connection::open(&site.db)?;
    locker.execute_batch("BEGIN EXCLUSIVE")?;
    let polled = worker.try_poll_workflow_task(Duration::from_secs(30)).await;
    assert!(
        polled.is_err(),
        "a workflow task was handed out though its start could not be stored: {polled:?}"
    );
    process.kill()?;
    drop(process);
    locker.execute_batch("ROLLBACK")?;
    drop(locker);

    let (process, client) = site.start().await?;
    worker.client = client;
    let task = match worker
        .try_poll_workflow_task(Duration::from_secs(15))
        .await?
    {
        Some(task) => task,
        None => panic!(
            "the matched task was lost with the process; log:\n{}",
            process.logs()
        ),
    };
    assert_eq!(
        task.workflow_execution.clone().unwrap_or_default().run_id,
        run_id
    );
    assert_eq!(
        event_types(&task.history.clone().unwrap_or_default().events),
        [
            WorkflowExecutionStarted,
            WorkflowTaskScheduled,
            WorkflowTaskStarted
        ],
        "started once, after the restart"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_closed_after_a_restart_frees_its_workflow_id() -> Result<()> {
    let site = Site::new()?;
    let (mut process, client) = site.start().await?;
    let mut worker = Worker::new(client);
    let wf = "closed-after-restart";
    let first_run = worker.start(wf).await?;
    let task = worker.poll_workflow_task().await?;
    process.kill()?;
    drop(process);

    // After the restart the shard knows the run only by the id in the task token.
    let (process, client) = site.start().await?;
    worker.client = client;
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"ok")])
        .await?;
    // The workflow is closed: a new start with its id (default policies) makes a new run.
    let second_run = match worker.start(wf).await {
        Ok(run_id) => run_id,
        Err(e) => panic!(
            "the closed run still holds its workflow id: {e:#}; log:\n{}",
            process.logs()
        ),
    };
    assert_ne!(second_run, first_run);
    Ok(())
}
