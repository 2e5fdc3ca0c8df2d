//! Matching: one [`TaskQueuePartition`] actor per task-queue partition, holding waiting
//! pollers and the backlog. A task offered while a poller waits is handed over at once (sync
//! match, no backlog write). Otherwise a task of a normal queue waits in memory, its offer
//! unanswered, until a poller takes it: the shard that offered it keeps its transfer task
//! meanwhile, so a crash loses nothing (the shard offers it again). Past
//! [`DEFAULT_HELD_IN_MEMORY`] such tasks per partition, and for sticky queues, a task is written
//! to the durable backlog and its offer answered. A handed-out task stays owed until the poller
//! acknowledges it (the history start was recorded); if the acknowledgement never comes, the
//! task goes back to the queue.

use std::collections::{HashMap, HashSet, VecDeque};
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
    /// When its caller stops waiting (unix millis; 0: never): a query still queued then is
    /// dropped.
    pub expires_ms: i64,
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
    /// The caller of `AddTask` for a task not yet in the backlog, answered once the task is
    /// consumed or written to the backlog (so the shard deletes its transfer task only then).
    owed: Option<oneshot::Sender<Result<()>>>,
}

impl Backlogged {
    fn settle(&mut self, result: Result<()>) {
        if let Some(owed) = self.owed.take() {
            let _ = owed.send(result);
        }
    }
}

/// Milliseconds without a poll after which a sticky queue counts as gone.
const STICKY_POLLER_GRACE_MS: i64 = 10_000;
/// Backlog ids per lease: a lease with `range_id` r owns ids `(r-1)*RANGE_SIZE+1 ..= r*RANGE_SIZE`.
const RANGE_SIZE: i64 = 100_000;
/// Ids left in the lease's range below which the partition renews its lease.
const RENEW_BELOW: i64 = 1_000;
/// Backlog tasks read from the store at a time; the partition keeps at most twice this many in
/// memory, the rest stays in the store until the memory backlog runs low.
const BACKLOG_PAGE: usize = 1_000;

/// Tasks of a normal queue a partition keeps in memory only, their offers unanswered, while no
/// poller takes them; past this many it writes new ones to the backlog. Each costs a pending
/// offer in its shard and the task in memory (about a kilobyte), and saves a backlog write and
/// delete: under load most tasks wait for a poller briefly.
pub const DEFAULT_HELD_IN_MEMORY: usize = 1_000;

/// One task-queue partition.
pub struct TaskQueuePartition {
    key: TaskQueueKey,
    store: DynStore,
    clock: Arc<dyn Clock>,
    /// At most this many entries of `backlog` are offers not yet answered.
    hold_at_most: usize,
    /// Entries of `backlog` whose offers are not answered yet (not in the store).
    unanswered: usize,
    range_id: i64,
    next_task_id: i64,
    pollers: VecDeque<oneshot::Sender<Matched>>,
    /// The backlog's head, in memory.
    backlog: VecDeque<Backlogged>,
    /// Page reads continue after this backlog id: every stored task not in `held` has a
    /// higher id.
    read_level: i64,
    /// Ids of the backlog tasks in memory or handed out to a poller.
    held: HashSet<i64>,
    /// Backlog tasks in the store that are not in memory yet (all with ids above
    /// `read_level`, except for writes still in flight).
    unread: usize,
    /// A page of the backlog is being read.
    reading: bool,
    /// The lease is being renewed.
    renewing: bool,
    last_poll_ms: i64,
    /// The last add or poll (unix millis).
    last_activity_ms: i64,
    telemetry: Telemetry,
    /// For a sticky queue: the normal queue behind it (metrics are tagged with its name).
    sticky: Option<String>,
    added: RateWindow,
    dispatched: RateWindow,
    recent_pollers: HashMap<String, i64>,
}

/// Long polls one partition holds at once; more are refused with `ResourceExhausted`.
pub const MAX_WAITING_POLLERS: usize = 1_000;
/// A partition with no poller, no backlog and no traffic for this long is unloaded.
const IDLE_UNLOAD_MS: i64 = 5 * 60 * 1000;
/// How often a partition drops expired queries and checks whether it is idle.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

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
            // The backlog is counted page by page (ids only are kept) so that the count is
            // exact whatever its size; its head is read into memory below.
            let mut unread = 0;
            let mut after = 0;
            loop {
                let page = store.get_tasks(&key, after, BACKLOG_PAGE).await?;
                unread += page.len();
                match page.last() {
                    Some(last) if page.len() == BACKLOG_PAGE => after = last.task_id,
                    _ => break,
                }
            }
            Ok::<_, Error>((range_id, unread))
        };
        ctx.wait(load.into_actor(self).map(|res, act, ctx| match res {
            Ok((range_id, unread)) => {
                act.set_range(range_id);
                act.unread = unread;
                act.read_page(ctx);
            }
            Err(_) => ctx.stop(),
        }));
        if self.telemetry.meter().is_some() {
            ctx.run_interval(BACKLOG_REPORT, |act, _| act.report_backlog());
        }
        ctx.run_interval(HOUSEKEEPING, |act, ctx| act.housekeeping(ctx));
    }
}

/// Offer a task. The answer comes at once for a query or a refusal; for a task, it is the
/// receiver of the task's outcome (see the handler).
#[derive(Message)]
#[rtype(result = "Result<Option<oneshot::Receiver<Result<()>>>>")]
pub struct AddTask {
    /// The task.
    pub item: QueueItem,
    /// Refuse with [`Error::StickyWorkerUnavailable`] when no poller came recently.
    pub sticky: bool,
}

/// Wait for a task (`1`: the poller's identity). Refused when the partition already holds
/// [`MAX_WAITING_POLLERS`] polls.
#[derive(Message)]
#[rtype(result = "Result<()>")]
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
            hold_at_most: DEFAULT_HELD_IN_MEMORY,
            unanswered: 0,
            range_id: 0,
            next_task_id: 0,
            pollers: VecDeque::new(),
            backlog: VecDeque::new(),
            read_level: 0,
            held: HashSet::new(),
            unread: 0,
            reading: false,
            renewing: false,
            last_poll_ms: now,
            last_activity_ms: now,
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
            backlog_count: self.backlog.len() + self.unread,
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
        self.telemetry.backlog(
            tags,
            self.key.partition,
            self.backlog.len() + self.unread,
            age,
        );
    }

    /// Drops queries whose callers stopped waiting; unloads the partition once it has been
    /// idle (no poller, nothing queued or owed, no traffic) for [`IDLE_UNLOAD_MS`].
    fn housekeeping(&mut self, ctx: &mut Context<Self>) {
        let now = self.clock.now_ms();
        self.backlog.retain(|b| !expired(&b.item, now));
        self.pollers.retain(|p| !p.is_closed());
        let idle = self.pollers.is_empty()
            && self.backlog.is_empty()
            && self.unread == 0
            && self.held.is_empty()
            && now - self.last_activity_ms > IDLE_UNLOAD_MS;
        if idle {
            ctx.stop();
        }
    }

    /// Starts using the ids of a new lease.
    fn set_range(&mut self, range_id: i64) {
        self.range_id = range_id;
        self.next_task_id = (range_id - 1) * RANGE_SIZE + 1;
    }

    /// The next backlog id, or `None` when the lease's range is (nearly) used up and must be
    /// renewed first.
    fn allocate_task_id(&mut self) -> Option<i64> {
        if self.range_id * RANGE_SIZE - self.next_task_id < RENEW_BELOW {
            return None;
        }
        let id = self.next_task_id;
        self.next_task_id += 1;
        Some(id)
    }

    /// Takes a new lease (and with it a new range of ids), then writes `entry`. The mailbox
    /// waits meanwhile, so nothing else is written under the old lease.
    fn renew_then_write(&mut self, mut entry: Backlogged, ctx: &mut Context<Self>) {
        if self.renewing {
            entry.settle(Err(Error::Unavailable(
                "task queue lease is being renewed".into(),
            )));
            return;
        }
        self.renewing = true;
        let (store, key) = (self.store.clone(), self.key.clone());
        let renew = async move { store.lease_task_queue(&key).await };
        ctx.wait(renew.into_actor(self).map(|res, act, ctx| {
            act.renewing = false;
            match res {
                Ok(range_id) => {
                    act.set_range(range_id);
                    act.write_to_backlog(entry, ctx);
                }
                Err(e) => entry.settle(Err(e.into())),
            }
        }));
    }

    /// Reads the next page of the stored backlog into memory when memory runs low.
    fn read_page(&mut self, ctx: &mut Context<Self>) {
        if self.reading || self.unread == 0 || self.backlog.len() >= BACKLOG_PAGE {
            return;
        }
        self.reading = true;
        let (store, key, after) = (self.store.clone(), self.key.clone(), self.read_level);
        let read = async move { store.get_tasks(&key, after, BACKLOG_PAGE).await };
        ctx.wait(read.into_actor(self).map(|res, act, ctx| {
            act.reading = false;
            let Ok(page) = res else {
                return;
            };
            let now = act.clock.now_ms();
            let full = page.len() == BACKLOG_PAGE;
            for t in page {
                act.read_level = act.read_level.max(t.task_id);
                if !act.held.insert(t.task_id) {
                    // Put in memory by its write already.
                    continue;
                }
                act.unread = act.unread.saturating_sub(1);
                if let Ok(task) = TaskInfo::decode(t.data.as_slice()) {
                    act.backlog.push_back(Backlogged {
                        item: QueueItem::Task(task),
                        backlog_id: Some(t.task_id),
                        enqueued_ms: now,
                        owed: None,
                    });
                }
            }
            if !full {
                // Whatever the count said, the store has nothing more past the read level.
                act.unread = 0;
            }
            act.drain_backlog(ctx);
        }));
    }

    /// A task written to the backlog: kept in memory when it is next in line and there is
    /// room, otherwise left for a later page.
    fn written(&mut self, mut entry: Backlogged, task_id: i64, ctx: &mut Context<Self>) {
        entry.settle(Ok(()));
        if self.held.contains(&task_id) {
            // A page read already brought it in.
            return;
        }
        if self.unread == 0 && self.backlog.len() < 2 * BACKLOG_PAGE {
            self.held.insert(task_id);
            self.read_level = self.read_level.max(task_id);
            entry.backlog_id = Some(task_id);
            self.backlog.push_back(entry);
            self.drain_backlog(ctx);
        } else {
            // Writes can finish out of order: make sure the next pages reach this one.
            self.unread += 1;
            self.read_level = self.read_level.min(task_id - 1);
        }
    }

    /// Writes a task to the backlog; `entry.owed` is answered with the outcome.
    fn write_to_backlog(&mut self, mut entry: Backlogged, ctx: &mut Context<Self>) {
        let QueueItem::Task(task) = &entry.item else {
            entry.settle(Ok(()));
            self.backlog.push_back(entry);
            return;
        };
        let Some(task_id) = self.allocate_task_id() else {
            return self.renew_then_write(entry, ctx);
        };
        let data = task.encode_to_vec();
        self.write_task(entry, task_id, data, ctx);
    }

    fn write_task(
        &mut self,
        entry: Backlogged,
        task_id: i64,
        data: Vec<u8>,
        ctx: &mut Context<Self>,
    ) {
        let (store, key, range_id) = (self.store.clone(), self.key.clone(), self.range_id);
        let rows = vec![QueueTask {
            task_id,
            data: data.clone(),
        }];
        let write = async move { store.create_tasks(&key, range_id, rows).await };
        ctx.spawn(write.into_actor(self).map(move |res, act, ctx| match res {
            Ok(()) => act.written(entry, task_id, ctx),
            // This partition renewed its own lease while the write was in flight: the id is
            // still unique, write it under the new lease.
            Err(sundial_storage::Error::TaskQueueLeaseLost { .. }) if act.range_id != range_id => {
                act.write_task(entry, task_id, data, ctx)
            }
            Err(e) => {
                let mut entry = entry;
                entry.settle(Err(e.into()))
            }
        }));
    }

    /// Hands `entry` to a waiting poller; gives it back when none is left.
    fn hand_out(&mut self, entry: Backlogged, ctx: &mut Context<Self>) -> Option<Backlogged> {
        if expired(&entry.item, self.clock.now_ms()) {
            return None;
        }
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
            let me = ctx.address();
            let mut handed = entry;
            actix::spawn(async move {
                match ack_rx.await {
                    Ok(true) => {
                        handed.settle(Ok(()));
                        if let Some(id) = handed.backlog_id {
                            me.do_send(Consumed(id));
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
            let unanswered = entry.owed.is_some();
            if let Some(back) = self.hand_out(entry, ctx) {
                self.backlog.push_front(back);
                break;
            }
            if unanswered {
                self.unanswered -= 1;
            }
        }
        self.read_page(ctx);
    }

    /// Keeps a task whose offer is unanswered in memory (at the back, or at the front for one
    /// given back), while fewer than `hold_at_most` are; otherwise writes it to the backlog.
    fn hold_or_write(&mut self, entry: Backlogged, front: bool, ctx: &mut Context<Self>) {
        if self.unanswered >= self.hold_at_most {
            return self.write_to_backlog(entry, ctx);
        }
        self.unanswered += 1;
        match front {
            true => self.backlog.push_front(entry),
            false => self.backlog.push_back(entry),
        }
        self.drain_backlog(ctx);
    }
}

impl Handler<AddTask> for TaskQueuePartition {
    type Result = Result<Option<oneshot::Receiver<Result<()>>>>;

    /// Answers once the task is durable here: consumed by a poller (its start recorded in
    /// history) or written to the backlog. Until then the shard keeps its transfer task, so a
    /// crash never loses a task: a task waits in memory unanswered (normal queues, up to
    /// `hold_at_most`) or is written to the backlog first. A partition that stops drops the
    /// tasks it holds, and their offers fail as `Unavailable`: the shard offers them again.
    fn handle(&mut self, msg: AddTask, ctx: &mut Self::Context) -> Self::Result {
        let now = self.clock.now_ms();
        self.last_activity_ms = now;
        self.added.record(now);
        if let (true, QueueItem::Task(task)) = (msg.sticky, &msg.item) {
            self.sticky = Some(task.normal_task_queue.clone());
        }
        let is_task = matches!(msg.item, QueueItem::Task(_));
        let (owed, answer) = oneshot::channel();
        let entry = Backlogged {
            item: msg.item,
            backlog_id: None,
            enqueued_ms: now,
            owed: is_task.then_some(owed),
        };
        if let Some(entry) = self.hand_out(entry, ctx) {
            if msg.sticky && now - self.last_poll_ms > STICKY_POLLER_GRACE_MS {
                return Err(Error::StickyWorkerUnavailable);
            }
            match (is_task, msg.sticky) {
                // A sticky queue's worker may be gone for good: its tasks go to the store
                // rather than wait in memory for a poller that never comes.
                (true, false) => self.hold_or_write(entry, false, ctx),
                _ => self.write_to_backlog(entry, ctx),
            }
        }
        // A query is not persisted: its caller waits for the answer itself.
        Ok(is_task.then_some(answer))
    }
}

impl Handler<Poll> for TaskQueuePartition {
    type Result = Result<()>;

    fn handle(&mut self, msg: Poll, ctx: &mut Self::Context) -> Result<()> {
        self.last_poll_ms = self.clock.now_ms();
        self.last_activity_ms = self.last_poll_ms;
        if !msg.1.is_empty() {
            self.recent_pollers.insert(msg.1, self.last_poll_ms);
            if self.recent_pollers.len() > 1000 {
                let cutoff = self.last_poll_ms - POLLER_HISTORY_MS;
                self.recent_pollers.retain(|_, at| *at >= cutoff);
            }
        }
        self.pollers.retain(|p| !p.is_closed());
        if self.pollers.len() >= MAX_WAITING_POLLERS {
            return Err(Error::Overloaded(format!(
                "task queue {} has {MAX_WAITING_POLLERS} polls waiting",
                self.key.name
            )));
        }
        self.pollers.push_back(msg.0);
        self.drain_backlog(ctx);
        Ok(())
    }
}

/// A query whose caller no longer waits.
fn expired(item: &QueueItem, now_ms: i64) -> bool {
    matches!(item, QueueItem::Query(q) if q.expires_ms != 0 && q.expires_ms <= now_ms)
}

impl Handler<Requeue> for TaskQueuePartition {
    type Result = ();

    /// A handed-out task came back unconsumed: it goes back to the head of the queue (one
    /// whose offer is unanswered is written to the backlog instead when memory holds enough
    /// of those).
    fn handle(&mut self, msg: Requeue, ctx: &mut Self::Context) {
        if msg.0.owed.is_some() {
            return self.hold_or_write(msg.0, true, ctx);
        }
        self.backlog.push_front(msg.0);
        self.drain_backlog(ctx);
    }
}

/// A backlog task was consumed: delete it under the current lease.
struct Consumed(i64);
impl Message for Consumed {
    type Result = ();
}

impl Handler<Consumed> for TaskQueuePartition {
    type Result = ();

    fn handle(&mut self, msg: Consumed, ctx: &mut Self::Context) {
        self.held.remove(&msg.0);
        let (store, key, range_id) = (self.store.clone(), self.key.clone(), self.range_id);
        ctx.spawn(
            async move {
                let _ = store.delete_tasks(&key, range_id, &[msg.0]).await;
            }
            .into_actor(self),
        );
        self.read_page(ctx);
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
    /// The actor threads partitions run on, picked by a hash of the partition's key.
    arbiters: Vec<ArbiterHandle>,
    telemetry: Telemetry,
    hold_at_most: usize,
    /// The history shards, where a poll records the start of the task it takes (set once the
    /// node has them: they hold this registry too).
    history: Arc<std::sync::OnceLock<crate::History>>,
    /// Legacy queries waiting for their worker's answer.
    queries: crate::Queries,
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
            arbiters: vec![arbiter],
            telemetry: Telemetry::default(),
            hold_at_most: DEFAULT_HELD_IN_MEMORY,
            history: Arc::default(),
            queries: crate::Queries::default(),
        }
    }

    /// The history shards polls record starts in (the first call wins).
    pub fn set_history(&self, history: crate::History) {
        let _ = self.history.set(history);
    }

    /// The history shards, once set.
    pub(crate) fn history(&self) -> Result<&crate::History> {
        self.history.get().ok_or_else(|| {
            Error::Unavailable("matching does not know the history service yet".into())
        })
    }

    /// The legacy queries waiting for answers.
    pub(crate) fn queries(&self) -> &crate::Queries {
        &self.queries
    }

    /// The clock partitions read.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Keeps at most `tasks` unanswered offers per partition in memory (0: every task that
    /// finds no poller is written to the backlog).
    pub fn hold_at_most(mut self, tasks: usize) -> Self {
        self.hold_at_most = tasks;
        self
    }

    /// Runs the partitions on these actor threads instead (at least one).
    pub fn spread_over(mut self, arbiters: Vec<ArbiterHandle>) -> Self {
        if !arbiters.is_empty() {
            self.arbiters = arbiters;
        }
        self
    }

    fn arbiter_for(&self, key: &TaskQueueKey) -> &ArbiterHandle {
        // FNV-1a: stable, cheap, and spreads queue names well enough.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.namespace_id.bytes().chain(key.name.bytes()) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= key.task_type as u64;
        &self.arbiters[(hash % self.arbiters.len() as u64) as usize]
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
        // Partitions unloaded while idle leave their entries behind: sweep them now and then.
        if map.len().is_multiple_of(64) {
            map.retain(|_, addr| addr.connected());
        }
        let (k, store, clock) = (key.clone(), self.store.clone(), self.clock.clone());
        let (telemetry, hold_at_most) = (self.telemetry.clone(), self.hold_at_most);
        let addr = TaskQueuePartition::start_in_arbiter(self.arbiter_for(key), move |_| {
            let mut partition = TaskQueuePartition::new(k, store, clock);
            partition.telemetry = telemetry;
            partition.hold_at_most = hold_at_most;
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
        let owed = self
            .telemetry
            .in_mailbox(ActorKind::TaskQueuePartition, send)
            .await
            .map_err(|e| Error::Unavailable(format!("task queue partition: {e}")))??;
        // The task's outcome comes later (consumed or written to the backlog): not a
        // message waiting in the mailbox.
        match owed {
            None => Ok(()),
            Some(outcome) => outcome
                .await
                .unwrap_or_else(|_| Err(Error::Unavailable("task queue partition stopped".into()))),
        }
    }

    /// Waits up to `timeout` for a task.
    pub async fn poll(&self, key: &TaskQueueKey, timeout: Duration) -> Option<Matched> {
        self.poll_as(key, timeout, "").await.ok().flatten()
    }

    /// [`Matching::poll`] by a poller that `DescribeTaskQueue` lists under `identity`;
    /// [`Error::Overloaded`] when the partition holds too many polls already.
    pub async fn poll_as(
        &self,
        key: &TaskQueueKey,
        timeout: Duration,
        identity: &str,
    ) -> Result<Option<Matched>> {
        let Some(addr) = self.partition(key, true) else {
            return Ok(None);
        };
        let (tx, rx) = oneshot::channel();
        let send = addr.send(Poll(tx, identity.to_string()));
        match self
            .telemetry
            .in_mailbox(ActorKind::TaskQueuePartition, send)
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            // The partition stopped (unloaded while idle): an empty poll; the next one loads it.
            Err(_) => return Ok(None),
        }
        Ok(tokio::time::timeout(timeout, rx)
            .await
            .ok()
            .and_then(|r| r.ok()))
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
        for mut entry in self.backlog.drain(..) {
            entry.settle(Err(Error::Unavailable(
                "task queue partition stopped".into(),
            )));
        }
        ctx.stop();
    }
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
