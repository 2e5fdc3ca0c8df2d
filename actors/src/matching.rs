//! Matching: one [`TaskQueuePartition`] actor per task-queue partition, holding waiting
//! pollers and the backlog. A task offered while a poller waits is handed over at once (sync
//! match, no backlog write); otherwise it is written to the durable backlog first. A handed-out
//! task stays owed until the poller acknowledges it (the history start was recorded); if the
//! acknowledgement never comes, the task goes back to the queue.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use prost::Message as _;
use sundial_engine::TaskInfo;
use sundial_storage::{DynStore, QueueTask, TaskQueueKey};
use tokio::sync::oneshot;

use crate::matching_stats::{PartitionStats, RateWindow};
use crate::telemetry::{ActorKind, QueueTags, Telemetry};
use crate::{Clock, Error, Result};

/// A query to hand to a workflow worker (not persisted: the caller waits for it).
#[derive(Debug, Clone)]
pub struct QueryTask {
    /// Id the answer is matched with.
    pub query_id: String,
    /// The run.
    pub namespace_id: String,
    /// Workflow id.
    pub workflow_id: String,
    /// Run id.
    pub run_id: String,
    /// The query.
    pub query: sundial_engine::api::query::v1::WorkflowQuery,
}

/// What a partition hands out.
#[derive(Debug, Clone)]
pub enum QueueItem {
    /// A workflow or activity task.
    Task(TaskInfo),
    /// A legacy query.
    Query(QueryTask),
}

/// A task handed to a poller; `ack(true)` once consumed, `ack(false)` (or dropping) to give it
/// back.
#[derive(Debug)]
pub struct Matched {
    /// The task.
    pub item: QueueItem,
    ack: Option<oneshot::Sender<bool>>,
}

impl Matched {
    /// Reports whether the task was consumed.
    pub fn ack(mut self, consumed: bool) {
        if let Some(tx) = self.ack.take() {
            let _ = tx.send(consumed);
        }
    }
}

struct Backlogged {
    item: QueueItem,
    backlog_id: Option<i64>,
    /// When it entered this partition (unix millis; load time for a reloaded backlog).
    enqueued_ms: i64,
}

/// Milliseconds without a poll after which a sticky queue counts as gone.
const STICKY_POLLER_GRACE_MS: i64 = 10_000;
/// Backlog ids per lease.
const RANGE_SIZE: i64 = 100_000;

/// One task-queue partition.
pub struct TaskQueuePartition {
    key: TaskQueueKey,
    store: DynStore,
    clock: Arc<dyn Clock>,
    range_id: i64,
    next_task_id: i64,
    pollers: VecDeque<oneshot::Sender<Matched>>,
    backlog: VecDeque<Backlogged>,
    last_poll_ms: i64,
    telemetry: Telemetry,
    /// For a sticky queue: the normal queue behind it (metrics are tagged with its name).
    sticky: Option<String>,
    added: RateWindow,
    dispatched: RateWindow,
    recent_pollers: HashMap<String, i64>,
}

/// Pollers not seen for this long leave `DescribeTaskQueue` (Temporal's 5 minutes).
const POLLER_HISTORY_MS: i64 = 5 * 60 * 1000;
/// How often a partition reports its backlog gauges.
const BACKLOG_REPORT: Duration = Duration::from_secs(1);

impl Actor for TaskQueuePartition {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let store = self.store.clone();
        let key = self.key.clone();
        let load = async move {
            let range_id = store.lease_task_queue(&key).await?;
            let tasks = store.get_tasks(&key, 0, 100_000).await?;
            Ok::<_, Error>((range_id, tasks))
        };
        ctx.wait(load.into_actor(self).map(|res, act, ctx| match res {
            Ok((range_id, tasks)) => {
                act.range_id = range_id;
                act.next_task_id = (range_id - 1) * RANGE_SIZE + 1;
                let now = act.clock.now_ms();
                for t in tasks {
                    if let Ok(task) = TaskInfo::decode(t.data.as_slice()) {
                        act.backlog.push_back(Backlogged {
                            item: QueueItem::Task(task),
                            backlog_id: Some(t.task_id),
                            enqueued_ms: now,
                        });
                    }
                }
            }
            Err(_) => ctx.stop(),
        }));
        if self.telemetry.meter().is_some() {
            ctx.run_interval(BACKLOG_REPORT, |act, _| act.report_backlog());
        }
    }
}

/// Offer a task.
#[derive(Message)]
#[rtype(result = "Result<()>")]
pub struct AddTask {
    /// The task.
    pub item: QueueItem,
    /// Refuse with [`Error::StickyWorkerUnavailable`] when no poller came recently.
    pub sticky: bool,
}

/// Wait for a task (`1`: the poller's identity).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Poll(pub oneshot::Sender<Matched>, pub String);

struct Requeue(Backlogged);
impl Message for Requeue {
    type Result = ();
}

impl TaskQueuePartition {
    fn new(key: TaskQueueKey, store: DynStore, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now_ms();
        Self {
            key,
            store,
            clock,
            range_id: 0,
            next_task_id: 0,
            pollers: VecDeque::new(),
            backlog: VecDeque::new(),
            last_poll_ms: now,
            telemetry: Telemetry::default(),
            sticky: None,
            added: RateWindow::default(),
            dispatched: RateWindow::default(),
            recent_pollers: HashMap::new(),
        }
    }

    fn stats(&self) -> PartitionStats {
        let now = self.clock.now_ms();
        let mut recent_pollers: Vec<(String, i64)> = self
            .recent_pollers
            .iter()
            .filter(|(_, at)| now - **at <= POLLER_HISTORY_MS)
            .map(|(id, at)| (id.clone(), *at))
            .collect();
        recent_pollers.sort_by_key(|p| std::cmp::Reverse(p.1));
        PartitionStats {
            backlog_count: self.backlog.len(),
            oldest_enqueued_ms: self.backlog.iter().map(|b| b.enqueued_ms).min(),
            tasks_add_rate: self.added.rate(now),
            tasks_dispatch_rate: self.dispatched.rate(now),
            pollers_waiting: self.pollers.iter().filter(|p| !p.is_closed()).count(),
            recent_pollers,
        }
    }

    fn report_backlog(&self) {
        let now = self.clock.now_ms();
        let oldest = self.backlog.iter().map(|b| b.enqueued_ms).min();
        let age = oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
        let tags = QueueTags {
            namespace_id: &self.key.namespace_id,
            task_queue: self.sticky.as_deref().unwrap_or(&self.key.name),
            task_type: self.key.task_type,
            sticky: self.sticky.is_some(),
        };
        self.telemetry
            .backlog(tags, self.key.partition, self.backlog.len(), age);
    }

    /// Hands `entry` to a waiting poller; gives it back when none is left.
    fn hand_out(&mut self, entry: Backlogged, ctx: &mut Context<Self>) -> Option<Backlogged> {
        while let Some(poller) = self.pollers.pop_front() {
            if poller.is_closed() {
                continue;
            }
            let (ack_tx, ack_rx) = oneshot::channel();
            let matched = Matched {
                item: entry.item.clone(),
                ack: Some(ack_tx),
            };
            if poller.send(matched).is_err() {
                continue;
            }
            self.dispatched.record(self.clock.now_ms());
            let store = self.store.clone();
            let key = self.key.clone();
            let range_id = self.range_id;
            let me = ctx.address();
            let handed = entry;
            actix::spawn(async move {
                match ack_rx.await {
                    Ok(true) => {
                        if let Some(id) = handed.backlog_id {
                            let _ = store.delete_tasks(&key, range_id, &[id]).await;
                        }
                    }
                    _ => me.do_send(Requeue(handed)),
                }
            });
            return None;
        }
        Some(entry)
    }

    fn drain_backlog(&mut self, ctx: &mut Context<Self>) {
        while !self.pollers.is_empty() {
            let Some(entry) = self.backlog.pop_front() else {
                break;
            };
            if let Some(back) = self.hand_out(entry, ctx) {
                self.backlog.push_front(back);
                break;
            }
        }
    }
}

impl Handler<AddTask> for TaskQueuePartition {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, msg: AddTask, ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        self.added.record(now);
        if let (true, QueueItem::Task(task)) = (msg.sticky, &msg.item) {
            self.sticky = Some(task.normal_task_queue.clone());
        }
        let entry = Backlogged {
            item: msg.item,
            backlog_id: None,
            enqueued_ms: now,
        };
        let Some(entry) = self.hand_out(entry, ctx) else {
            return Box::pin(actix::fut::ready(Ok(())));
        };
        if msg.sticky && self.clock.now_ms() - self.last_poll_ms > STICKY_POLLER_GRACE_MS {
            return Box::pin(actix::fut::ready(Err(Error::StickyWorkerUnavailable)));
        }
        let QueueItem::Task(task) = &entry.item else {
            self.backlog.push_back(entry);
            return Box::pin(actix::fut::ready(Ok(())));
        };
        let task_id = self.next_task_id;
        self.next_task_id += 1;
        let store = self.store.clone();
        let key = self.key.clone();
        let range_id = self.range_id;
        let data = task.encode_to_vec();
        let write = async move {
            store
                .create_tasks(&key, range_id, vec![QueueTask { task_id, data }])
                .await
        };
        Box::pin(write.into_actor(self).map(move |res, act, ctx| {
            res?;
            act.backlog.push_back(Backlogged {
                item: entry.item,
                backlog_id: Some(task_id),
                enqueued_ms: entry.enqueued_ms,
            });
            act.drain_backlog(ctx);
            Ok(())
        }))
    }
}

impl Handler<Poll> for TaskQueuePartition {
    type Result = ();

    fn handle(&mut self, msg: Poll, ctx: &mut Self::Context) {
        self.last_poll_ms = self.clock.now_ms();
        if !msg.1.is_empty() {
            self.recent_pollers.insert(msg.1, self.last_poll_ms);
            if self.recent_pollers.len() > 1000 {
                let cutoff = self.last_poll_ms - POLLER_HISTORY_MS;
                self.recent_pollers.retain(|_, at| *at >= cutoff);
            }
        }
        self.pollers.retain(|p| !p.is_closed());
        self.pollers.push_back(msg.0);
        self.drain_backlog(ctx);
    }
}

impl Handler<Requeue> for TaskQueuePartition {
    type Result = ();

    fn handle(&mut self, msg: Requeue, ctx: &mut Self::Context) {
        self.backlog.push_front(msg.0);
        self.drain_backlog(ctx);
    }
}

/// Counts a partition reports.
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub struct Stats;

impl Handler<Stats> for TaskQueuePartition {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult((
            self.backlog.len(),
            self.pollers.iter().filter(|p| !p.is_closed()).count(),
        ))
    }
}

/// A partition's statistics, exact (for `DescribeTaskQueue`).
#[derive(Message)]
#[rtype(result = "PartitionStats")]
pub struct Describe;

impl Handler<Describe> for TaskQueuePartition {
    type Result = MessageResult<Describe>;

    fn handle(&mut self, _: Describe, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stats())
    }
}

/// The cheap handle to every partition of this node.
#[derive(Clone)]
pub struct Matching {
    partitions: Arc<Mutex<HashMap<TaskQueueKey, Addr<TaskQueuePartition>>>>,
    store: DynStore,
    clock: Arc<dyn Clock>,
    arbiter: ArbiterHandle,
    telemetry: Telemetry,
}

/// Task type of workflow-task queues (Temporal's `TaskQueueType`).
pub const WORKFLOW_QUEUE: i32 = 1;
/// Task type of activity-task queues.
pub const ACTIVITY_QUEUE: i32 = 2;

impl Matching {
    /// A registry whose partitions run on `arbiter`.
    pub fn new(store: DynStore, clock: Arc<dyn Clock>, arbiter: ArbiterHandle) -> Self {
        Self {
            partitions: Arc::default(),
            store,
            clock,
            arbiter,
            telemetry: Telemetry::default(),
        }
    }

    /// Records the partitions' metrics into `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// The key of a queue's root partition.
    pub fn key(namespace_id: &str, name: &str, task_type: i32) -> TaskQueueKey {
        TaskQueueKey {
            namespace_id: namespace_id.to_string(),
            name: name.to_string(),
            task_type,
            partition: 0,
        }
    }

    fn partition(&self, key: &TaskQueueKey, create: bool) -> Option<Addr<TaskQueuePartition>> {
        let mut map = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(addr) = map.get(key)
            && addr.connected()
        {
            return Some(addr.clone());
        }
        if !create {
            return None;
        }
        let (k, store, clock) = (key.clone(), self.store.clone(), self.clock.clone());
        let telemetry = self.telemetry.clone();
        let addr = TaskQueuePartition::start_in_arbiter(&self.arbiter, move |_| {
            let mut partition = TaskQueuePartition::new(k, store, clock);
            partition.telemetry = telemetry;
            partition
        });
        map.insert(key.clone(), addr.clone());
        Some(addr)
    }

    /// Offers a task; `sticky` queues refuse when their worker is gone.
    pub async fn add(&self, key: &TaskQueueKey, item: QueueItem, sticky: bool) -> Result<()> {
        let Some(addr) = self.partition(key, !sticky) else {
            return Err(Error::StickyWorkerUnavailable);
        };
        let send = addr.send(AddTask { item, sticky });
        self.telemetry
            .in_mailbox(ActorKind::TaskQueuePartition, send)
            .await
            .map_err(|e| Error::Unavailable(format!("task queue partition: {e}")))?
    }

    /// Waits up to `timeout` for a task.
    pub async fn poll(&self, key: &TaskQueueKey, timeout: Duration) -> Option<Matched> {
        self.poll_as(key, timeout, "").await
    }

    /// [`Matching::poll`] by a poller that `DescribeTaskQueue` lists under `identity`.
    pub async fn poll_as(
        &self,
        key: &TaskQueueKey,
        timeout: Duration,
        identity: &str,
    ) -> Option<Matched> {
        let addr = self.partition(key, true)?;
        let (tx, rx) = oneshot::channel();
        let send = addr.send(Poll(tx, identity.to_string()));
        self.telemetry
            .in_mailbox(ActorKind::TaskQueuePartition, send)
            .await
            .ok()?;
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }

    /// Unloads a partition (a sticky queue whose worker shut down).
    pub fn unload(&self, key: &TaskQueueKey) {
        let mut map = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(addr) = map.remove(key) {
            addr.do_send(Stop);
        }
    }

    /// Backlog length and waiting pollers of a loaded partition.
    pub async fn stats(&self, key: &TaskQueueKey) -> Option<(usize, usize)> {
        let addr = self.partition(key, false)?;
        addr.send(Stats).await.ok()
    }

    /// The exact statistics of a partition, loading it (and its durable backlog) if needed;
    /// `None` when it cannot be reached.
    pub async fn describe(&self, key: &TaskQueueKey) -> Option<PartitionStats> {
        let addr = self.partition(key, true)?;
        addr.send(Describe).await.ok()
    }
}

struct Stop;
impl Message for Stop {
    type Result = ();
}
impl Handler<Stop> for TaskQueuePartition {
    type Result = ();
    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) {
        for entry in self.backlog.drain(..) {
            drop(entry);
        }
        ctx.stop();
    }
}
