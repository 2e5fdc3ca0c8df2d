//! Partition tests on a real actor system over the in-memory store: a new [`Matching`] over
//! the same store stands for a restarted node.

use std::sync::Arc;
use std::time::Duration;

use sundial_engine::TaskInfo;
use sundial_storage::{DynStore, memory::MemoryStore};

use super::*;
use crate::SystemClock;

fn arbiter() -> ArbiterHandle {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = System::new();
        let _ = tx.send(Arbiter::current());
        system.run()
    });
    rx.recv().expect("actor system starts")
}

fn task(n: i64) -> QueueItem {
    QueueItem::Task(TaskInfo {
        namespace_id: "ns".into(),
        workflow_id: format!("wf-{n}"),
        run_id: "run".into(),
        scheduled_event_id: n,
        task_queue: "q".into(),
        ..Default::default()
    })
}

fn scheduled_id(matched: &Matched) -> i64 {
    match &matched.item {
        QueueItem::Task(t) => t.scheduled_event_id,
        QueueItem::Query(_) => panic!("a query"),
    }
}

fn key() -> TaskQueueKey {
    Matching::key("ns", "q", WORKFLOW_QUEUE)
}

fn matching(store: &DynStore) -> Matching {
    Matching::new(store.clone(), Arc::new(SystemClock), arbiter())
}

/// Matching whose partitions write every task no poller takes at once to the backlog.
fn backlogging(store: &DynStore) -> Matching {
    matching(store).hold_at_most(0)
}

/// True once `offer` has been answered.
async fn answered(offer: &mut tokio::task::JoinHandle<Result<()>>) -> bool {
    tokio::time::timeout(Duration::from_millis(200), offer)
        .await
        .is_ok()
}

const POLL: Duration = Duration::from_secs(5);

/// Offers task `n` while a poll waits; returns what the poller got and the pending offer.
async fn sync_match(m: &Matching, n: i64) -> (Matched, tokio::task::JoinHandle<Result<()>>) {
    let poll = tokio::spawn({
        let m = m.clone();
        async move { m.poll(&key(), POLL).await }
    });
    // The poll must be waiting before the task is offered: describe counts it.
    while m.describe(&key()).await.expect("loaded").pollers_waiting == 0 {
        tokio::task::yield_now().await;
    }
    let add = tokio::spawn({
        let m = m.clone();
        async move { m.add(&key(), task(n), false).await }
    });
    (poll.await.unwrap().expect("sync match"), add)
}

#[tokio::test]
async fn a_sync_match_is_answered_only_once_the_poller_consumed_it() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let m = matching(&store);
    let (matched, mut add) = sync_match(&m, 1).await;
    // Still owed: the shard must not delete its transfer task yet.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut add)
            .await
            .is_err(),
        "AddTask answered before the poller recorded the start"
    );
    matched.ack(true);
    add.await.unwrap().expect("answered after the ack");
}

#[tokio::test]
async fn a_sync_matched_task_given_back_survives_a_restart() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let m = backlogging(&store);
    let (matched, add) = sync_match(&m, 7).await;
    // The poller's history call failed: it gives the task back.
    matched.ack(false);
    add.await.unwrap().expect("written to the backlog");
    // The node restarts: the task is in the store, not only in the old partition's memory.
    m.unload(&key());
    let restarted = matching(&store);
    let again = restarted.poll(&key(), POLL).await.expect("redelivered");
    assert_eq!(scheduled_id(&again), 7);
}

#[tokio::test]
async fn a_task_no_poller_takes_waits_in_memory_with_its_offer_unanswered() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let m = matching(&store);
    let offer = |n| {
        let m = m.clone();
        tokio::spawn(async move { m.add(&key(), task(n), false).await })
    };
    let mut first = offer(1);
    assert!(
        !answered(&mut first).await,
        "answered before anything is durable"
    );
    assert!(
        store.get_tasks(&key(), 0, 10).await.unwrap().is_empty(),
        "written to the backlog"
    );
    // Taken, given back, taken again and consumed: answered only then.
    let matched = m.poll(&key(), POLL).await.expect("the held task");
    assert_eq!(scheduled_id(&matched), 1);
    matched.ack(false);
    assert!(!answered(&mut first).await, "answered once given back");
    let matched = m.poll(&key(), POLL).await.expect("given back, then held");
    assert_eq!(scheduled_id(&matched), 1);
    matched.ack(true);
    first.await.unwrap().expect("answered once consumed");
    assert!(store.get_tasks(&key(), 0, 10).await.unwrap().is_empty());

    // A partition that stops (a crash, or an unload) drops what it holds: the offer fails as
    // retryable, so the shard, which still has its transfer task, offers it again.
    let second = offer(2);
    while m.describe(&key()).await.expect("loaded").backlog_count == 0 {
        tokio::task::yield_now().await;
    }
    m.unload(&key());
    let refused = second.await.unwrap();
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
}

#[tokio::test]
async fn past_its_limit_a_partition_writes_tasks_to_the_backlog_and_answers() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let m = matching(&store).hold_at_most(2);
    let held: Vec<_> = (1..=2)
        .map(|n| {
            let m = m.clone();
            tokio::spawn(async move { m.add(&key(), task(n), false).await })
        })
        .collect();
    while m.describe(&key()).await.expect("loaded").backlog_count < 2 {
        tokio::task::yield_now().await;
    }
    m.add(&key(), task(3), false).await.expect("written");
    let stored = store.get_tasks(&key(), 0, 10).await.unwrap();
    assert_eq!(stored.len(), 1, "only the task past the limit is stored");
    for expected in 1..=3 {
        let matched = m.poll(&key(), POLL).await.expect("a task");
        assert_eq!(scheduled_id(&matched), expected);
        matched.ack(true);
    }
    for offer in held {
        offer.await.unwrap().expect("answered once consumed");
    }
}

#[tokio::test]
async fn a_backlog_past_one_lease_keeps_every_task_once() {
    const TASKS: i64 = 100_500;
    let store: DynStore = Arc::new(MemoryStore::new());
    let m = backlogging(&store);
    for n in 0..TASKS {
        m.add(&key(), task(n), false).await.expect("backlogged");
    }
    // A restart takes a new lease; tasks written under it must not reuse stored ids.
    m.unload(&key());
    let restarted = backlogging(&store);
    for n in TASKS..TASKS + 10 {
        restarted
            .add(&key(), task(n), false)
            .await
            .expect("backlogged");
    }
    let stats = restarted.describe(&key()).await.expect("loaded");
    assert_eq!(stats.backlog_count as i64, TASKS + 10);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..TASKS + 10 {
        let Some(matched) = restarted.poll(&key(), POLL).await else {
            panic!("no task after {} of {}", seen.len(), TASKS + 10);
        };
        assert!(seen.insert(scheduled_id(&matched)), "delivered twice");
        matched.ack(true);
    }
    assert_eq!(seen.len() as i64, TASKS + 10);
    assert!(
        restarted
            .poll(&key(), Duration::from_millis(100))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn waiting_polls_are_bounded_per_partition() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let m = matching(&store);
    let polls: Vec<_> = (0..MAX_WAITING_POLLERS)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.poll(&key(), Duration::from_secs(30)).await })
        })
        .collect();
    while m.describe(&key()).await.expect("loaded").pollers_waiting < MAX_WAITING_POLLERS {
        tokio::task::yield_now().await;
    }
    let refused = m.poll_as(&key(), POLL, "one-too-many").await;
    assert!(matches!(refused, Err(Error::Overloaded(_))), "{refused:?}");
    for p in polls {
        p.abort();
    }
}

#[tokio::test]
async fn a_query_whose_caller_gave_up_is_dropped_not_handed_out() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let m = backlogging(&store);
    let expired = QueueItem::Query(QueryTask {
        query_id: "q".into(),
        namespace_id: "ns".into(),
        workflow_id: "wf".into(),
        run_id: "run".into(),
        query: Default::default(),
        expires_ms: 1,
    });
    m.add(&key(), expired, false).await.expect("queued");
    m.add(&key(), task(3), false).await.expect("backlogged");
    let first = m.poll(&key(), POLL).await.expect("a task");
    assert_eq!(scheduled_id(&first), 3);
}

/// A clock the test moves by hand.
struct ManualClock(std::sync::atomic::AtomicI64);

impl crate::Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[tokio::test]
async fn an_idle_partition_is_unloaded_and_loads_again_when_used() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let clock = Arc::new(ManualClock(1_000_000.into()));
    let m = Matching::new(store.clone(), clock.clone(), arbiter());
    m.describe(&key()).await.expect("loaded");
    clock
        .0
        .fetch_add(IDLE_UNLOAD_MS + 1, std::sync::atomic::Ordering::Relaxed);
    // Housekeeping runs every second of real time.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while m.stats(&key()).await.is_some() {
        assert!(std::time::Instant::now() < deadline, "never unloaded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let offer = tokio::spawn({
        let m = m.clone();
        async move { m.add(&key(), task(9), false).await }
    });
    let matched = m.poll(&key(), POLL).await.expect("a task");
    assert_eq!(scheduled_id(&matched), 9);
    matched.ack(true);
    offer.await.unwrap().expect("loaded again");
}
