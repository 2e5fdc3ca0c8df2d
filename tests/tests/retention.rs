//! Retention: a closed run and its history are deleted once the namespace's retention has
//! passed, by a durable timer of its shard (on a clock the test moves).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use sundial_proto::workflowservice::RegisterNamespaceRequest;
use sundial_storage::memory::MemoryStore;
use sundial_tests::worker::{commands, rpc, secs};
use sundial_tests::{TestServer, Worker};
use tonic::Code;

/// A clock the test moves by hand, starting at the real time.
struct ManualClock(AtomicI64);

impl sundial_actors::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A server on the in-memory store whose clock the test moves.
async fn server_on_manual_clock() -> Result<(TestServer, Arc<ManualClock>)> {
    let now = sundial_actors::Clock::now_ms(&sundial_actors::SystemClock);
    let clock = Arc::new(ManualClock(AtomicI64::new(now)));
    let server =
        TestServer::start_with_clock(Arc::new(MemoryStore::new()), None, clock.clone()).await?;
    Ok((server, clock))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_run_is_deleted_after_the_namespace_retention() -> Result<()> {
    let (server, clock) = server_on_manual_clock().await?;
    let mut client = server.client().await?;
    client
        .register_namespace(rpc(RegisterNamespaceRequest {
            namespace: "short-retention".into(),
            workflow_execution_retention_period: Some(secs(3600)),
            ..Default::default()
        }))
        .await?;
    let mut worker = Worker::new(client);
    worker.namespace = "short-retention".into();
    worker.start("kept-for-an-hour").await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"done")])
        .await?;

    // Just before the retention ends the run is still there.
    clock.0.fetch_add(3_599_000, Ordering::Relaxed);
    ensure!(!worker.history("kept-for-an-hour").await?.is_empty());

    clock.0.fetch_add(2_000, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match worker.describe("kept-for-an-hour").await {
            Err(e) => {
                let status = e.downcast_ref::<tonic::Status>();
                ensure!(status.map(|s| s.code()) == Some(Code::NotFound), "{e:?}");
                break;
            }
            Ok(_) => {
                ensure!(Instant::now() < deadline, "the run was not deleted");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let history = worker.history("kept-for-an-hour").await;
    ensure!(history.is_err(), "its history is gone too: {history:?}");
    Ok(())
}

/// Timers far ahead are not held in memory; the shard reads them from the store as its timer
/// window moves on, and they fire on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_beyond_the_in_memory_window_fires_when_its_time_comes() -> Result<()> {
    let (server, clock) = server_on_manual_clock().await?;
    let mut worker = Worker::new(server.client().await?);
    worker.start("waits-an-hour").await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(
            task.task_token,
            vec![commands::start_timer("t", secs(3600))],
        )
        .await?;
    // An hour passes: the window (minutes long) moves to the timer, which fires.
    clock.0.fetch_add(3_601_000, Ordering::Relaxed);
    let fired = worker
        .try_poll_workflow_task(Duration::from_secs(10))
        .await?;
    let events = fired
        .and_then(|t| t.history)
        .map(|h| h.events)
        .unwrap_or_default();
    let types = sundial_tests::worker::event_types(&events);
    ensure!(
        types.contains(&sundial_proto::api::enums::v1::EventType::TimerFired),
        "{types:?}"
    );
    Ok(())
}
