//! The `HistoryShard` actor: owns one shard, applies requests in arrival order and commits all
//! that its mailbox held in one fenced storage transaction (group commit). After the commit it
//! replies, pushes tasks to matching and arms timers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use prost::Message as _;
use slog::{Logger, error, info, warn};
use sundial_engine::{Env, TaskInfo, TaskKind};
use sundial_storage::{DynStore, ExecutionKey};
use tokio::sync::oneshot;

use crate::MatchingClient;
use crate::matching::{ACTIVITY_QUEUE, Matching, WORKFLOW_QUEUE};
use crate::ops::{Request, Response, Ticket};
use crate::shard_core::{Answer, Effects, ReadyTask, ShardCore};
use crate::telemetry::{BatchTrace, ShardTelemetry, Telemetry};
use crate::{Clock, Error};

/// How often due timers are looked for.
const TICK: Duration = Duration::from_millis(20);
/// Timers are held in memory only when they fire within this window; later ones stay in the
/// store until the window moves on (so 100k runs waiting on hour-long timers cost no memory).
const TIMER_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Requests a shard queues (waiting for the commit in flight) before it refuses more with
/// `ResourceExhausted`.
pub const MAX_QUEUED_OPS: usize = 10_000;
/// First wait before a failed acquire or transfer dispatch is retried; doubled per failure.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between retries.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The wait before retry number `attempt` (1-based).
fn backoff(attempt: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(RETRY_MAX)
}

/// Whether the shard serves, as the health service sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Being acquired (at start, or again after a failed acquire).
    Acquiring,
    /// Acquired: requests are applied.
    Serving,
    /// The acquire failed; retried after a backoff. Requests are refused meanwhile.
    Down,
    /// Another owner took the shard (its range id moved on): this process stops serving it.
    Fenced,
    /// Not owned here: the shard is another member's (see `shard_owners`), or this process
    /// has not been told to take it yet. Requests are refused naming the owner.
    Released,
}

/// One history shard.
pub struct HistoryShard {
    core: ShardCore,
    store: DynStore,
    matching: MatchingClient,
    clock: Arc<dyn Clock>,
    log: Logger,
    queue: Vec<(Ticket, Request)>,
    /// The callers behind the tickets of requests not answered yet.
    callers: HashMap<Ticket, ReplyTx>,
    /// The next ticket to hand out.
    next_ticket: u64,
    busy: bool,
    /// Timers firing up to `timer_window_end` (unix millis), by (fire time, task id).
    timers: BTreeMap<(i64, i64), TaskInfo>,
    timer_window_end: i64,
    /// The end of the next window while it is being read.
    loading_timers_until: Option<i64>,
    last_ack_flush_ms: i64,
    telemetry: ShardTelemetry,
    /// Every shard of the node, for tasks aimed at other workflows.
    history: Option<crate::History>,
    /// Cross-workflow tasks that came before the peers did.
    awaiting_peers: Vec<ReadyTask>,
    ownership: Ownership,
    /// The address this process serves history at, recorded in the shard's row as its owner.
    address: Arc<str>,
    /// While fenced: where the shard's owner serves (empty when not known).
    owner: String,
    /// Failed acquires in a row.
    acquire_failures: u32,
    /// Set while the shard serves; read by the health service.
    serving: Arc<std::sync::atomic::AtomicBool>,
    /// Taken only when told to ([`Own`]), not when started.
    unowned_at_start: bool,
    /// Set once told another member owns the shard (the owner's address): the shard is
    /// released as soon as no batch is in flight.
    releasing: Option<String>,
}

/// Tells a shard whether this process owns it now; `owner` names the member that does when
/// it is not this one (empty when none is known).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Own {
    /// This process owns the shard.
    pub own: bool,
    /// The owner's address when it is another member.
    pub owner: String,
}

/// Tells a shard how to reach every shard (itself included).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetHistory(pub crate::History);

impl Handler<SetHistory> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: SetHistory, ctx: &mut Self::Context) {
        self.history = Some(msg.0);
        for ready in std::mem::take(&mut self.awaiting_peers) {
            self.dispatch(ctx, ready);
        }
    }
}

/// Where a caller waits for one reply.
pub type ReplyTx = oneshot::Sender<crate::Result<Response>>;

/// Submit a request with one reply channel per reply it gets ([`Request::tickets`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Submit(pub Request, pub Vec<ReplyTx>);

/// [`Submit`] from a traced caller: the shard's spans become children of `2`.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubmitTraced(pub Request, pub Vec<ReplyTx>, pub opentelemetry::Context);

struct Loaded {
    ops: Vec<(Ticket, Request)>,
    result: crate::Result<Vec<Load>>,
    trace: BatchTrace,
}
impl Message for Loaded {
    type Result = ();
}

struct Committed {
    result: sundial_storage::Result<()>,
    effects: Effects,
    touched: Vec<ExecutionKey>,
}
impl Message for Committed {
    type Result = ();
}

struct Ack(i64);
impl Message for Ack {
    type Result = ();
}

/// A transfer task to dispatch again after a failure (the attempt that failed).
struct Redispatch(ReadyTask, u32);
impl Message for Redispatch {
    type Result = ();
}

struct Acquire;
impl Message for Acquire {
    type Result = ();
}

/// What a shard finds when it is acquired: its range id, pending transfer tasks and timers.
type Acquired = (i64, Vec<ReadyTask>, Vec<(i64, i64, TaskInfo)>);

struct Ready(crate::Result<Acquired>);
impl Message for Ready {
    type Result = ();
}

enum Load {
    Current(String, String, Option<sundial_storage::CurrentExecutionRow>),
    Run(sundial_storage::ExecutionRow),
    Renewed(i64),
}

impl HistoryShard {
    /// A shard actor; it acquires the shard when started.
    pub fn new(
        shard_id: i32,
        store: DynStore,
        matching: MatchingClient,
        clock: Arc<dyn Clock>,
        log: Logger,
    ) -> Self {
        Self {
            core: ShardCore::new(shard_id, 0),
            store,
            matching,
            clock,
            log,
            queue: Vec::new(),
            callers: HashMap::new(),
            next_ticket: 0,
            busy: true,
            timers: BTreeMap::new(),
            timer_window_end: 0,
            loading_timers_until: None,
            last_ack_flush_ms: 0,
            telemetry: ShardTelemetry::default(),
            history: None,
            awaiting_peers: Vec::new(),
            ownership: Ownership::Acquiring,
            address: Arc::from(""),
            owner: String::new(),
            acquire_failures: 0,
            serving: Arc::default(),
            unowned_at_start: false,
            releasing: None,
        }
    }

    /// Starts released: the shard is taken only when an [`Own`] says so (a member of a
    /// cluster, whose shards are spread over the history members).
    pub fn unowned(mut self) -> Self {
        self.unowned_at_start = true;
        self
    }

    /// Whether the shard is held here (serving, being acquired or retrying an acquire).
    fn held(&self) -> bool {
        !matches!(self.ownership, Ownership::Fenced | Ownership::Released)
    }

    /// Drops everything the shard holds in memory, to be read again from the store when it
    /// is next acquired.
    fn forget_state(&mut self) {
        let limits = self.core.cache_limits;
        self.core = ShardCore::new(self.core.shard_id, 0);
        self.core.cache_limits = limits;
        self.timers.clear();
        self.awaiting_peers.clear();
    }

    /// Gives the shard up to `owner` (no batch is in flight): every waiting caller is told who
    /// owns it, and its state is dropped. The new owner's acquire fences this process in the
    /// store, so nothing written here after that could land.
    fn release(&mut self, owner: String) {
        info!(self.log, "shard released to its new owner"; "shard_id" => self.core.shard_id,
            "owner" => &owner);
        self.releasing = None;
        self.owner = owner;
        self.set_ownership(Ownership::Released);
        self.busy = true;
        self.refuse_all(&self.ownership_lost());
        self.forget_state();
    }

    /// Records `address` (where this process serves history) as the owner of the shard when
    /// it acquires it.
    pub fn with_address(mut self, address: Arc<str>) -> Self {
        self.address = address;
        self
    }

    /// Reports whether the shard serves through `flag`.
    pub fn with_serving_flag(mut self, flag: Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.serving = flag;
        self
    }

    fn set_ownership(&mut self, ownership: Ownership) {
        self.ownership = ownership;
        self.serving.store(
            ownership == Ownership::Serving,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Takes the shard: a new range id, then its pending transfer tasks and timers.
    fn acquire(&mut self, ctx: &mut Context<Self>) {
        self.set_ownership(Ownership::Acquiring);
        self.busy = true;
        let store = self.store.clone();
        let shard_id = self.core.shard_id;
        let me = ctx.address();
        let address = self.address.clone();
        let window_end = self.clock.now_ms().saturating_add(TIMER_WINDOW_MS);
        self.timer_window_end = window_end;
        actix::spawn(async move {
            let result = async {
                let info = store.acquire_shard(shard_id, &address).await?;
                let transfer = store
                    .list_transfer_tasks(shard_id, i64::MIN, usize::MAX)
                    .await?;
                let timers = store
                    .list_timer_tasks(shard_id, window_end, usize::MAX)
                    .await?;
                let transfer = transfer
                    .into_iter()
                    .filter_map(|t| {
                        TaskInfo::decode(t.data.as_slice())
                            .ok()
                            .map(|task| ReadyTask {
                                task_id: t.task_id,
                                task,
                            })
                    })
                    .collect();
                let timers = timers
                    .into_iter()
                    .filter_map(|t| {
                        TaskInfo::decode(t.data.as_slice())
                            .ok()
                            .map(|task| (t.fire_time_ms, t.task_id, task))
                    })
                    .collect();
                Ok::<_, Error>((info.range_id, transfer, timers))
            }
            .await;
            me.do_send(Ready(result));
        });
    }

    /// Refuses a request the shard cannot take now; `None` when it can.
    fn refusal(&self) -> Option<Error> {
        let shard_id = self.core.shard_id;
        if let Some(owner) = &self.releasing {
            return Some(Error::ShardOwnershipLost {
                shard_id,
                owner: owner.clone(),
            });
        }
        match self.ownership {
            Ownership::Fenced | Ownership::Released => Some(self.ownership_lost()),
            Ownership::Down => Some(Error::Unavailable(format!(
                "shard {shard_id} is not available; it is being acquired again"
            ))),
            _ if self.queue.len() >= MAX_QUEUED_OPS => Some(Error::Overloaded(format!(
                "shard {shard_id} has {MAX_QUEUED_OPS} requests waiting"
            ))),
            _ => None,
        }
    }

    fn submit(&mut self, request: Request, replies: Vec<ReplyTx>, ctx: &mut Context<Self>) {
        if let Some(err) = self.refusal() {
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
            return;
        }
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += request.tickets();
        let tickets = (ticket.0..).map(Ticket);
        self.callers.extend(tickets.zip(replies));
        self.queue.push((ticket, request));
        self.drain(ctx);
    }

    /// Sends a reply to the caller behind its ticket (if still there).
    fn reply(&mut self, (ticket, result): Answer) {
        self.observe_start(&result);
        if let Some(caller) = self.callers.remove(&ticket) {
            let _ = caller.send(result);
        }
    }

    /// Records how long a task waited for its start (`task_schedule_to_start_latency`), as
    /// history records it when a poller's start is committed.
    fn observe_start(&self, result: &Result<Response, Error>) {
        let (state, task_type, sticky, scheduled_ms, started_ms) = match result {
            Ok(Response::WorkflowTaskStarted(started)) => (
                &started.state,
                WORKFLOW_QUEUE,
                started
                    .state
                    .workflow_task
                    .as_ref()
                    .is_some_and(|t| t.sticky),
                started.start.scheduled_time_ms,
                started.start.started_time_ms,
            ),
            Ok(Response::ActivityStarted(started)) => (
                &started.state,
                ACTIVITY_QUEUE,
                false,
                started.activity.scheduled_time_ms,
                started.activity.started_time_ms,
            ),
            _ => return,
        };
        let queue = match task_type {
            ACTIVITY_QUEUE => match result {
                Ok(Response::ActivityStarted(started)) => started
                    .activity
                    .scheduled
                    .as_ref()
                    .and_then(|s| s.task_queue.as_ref())
                    .map_or("", |q| q.name.as_str()),
                _ => "",
            },
            _ => state
                .started
                .as_ref()
                .and_then(|s| s.task_queue.as_ref())
                .map_or("", |q| q.name.as_str()),
        };
        self.telemetry.telemetry().schedule_to_start(
            crate::telemetry::QueueTags {
                namespace_id: &state.namespace_id,
                task_queue: queue,
                task_type,
                sticky,
            },
            scheduled_ms,
            started_ms,
        );
    }

    /// Answers every reply a request is owed with `err`.
    fn refuse(&mut self, ticket: Ticket, request: &Request, err: &Error) {
        for i in 0..request.tickets() {
            self.reply((Ticket(ticket.0 + i), Err(err.clone())));
        }
    }

    /// Answers every caller still waiting (queued, or waiting in the shard's logic) with `err`:
    /// the shard's state is being dropped.
    fn refuse_all(&mut self, err: &Error) {
        self.queue.clear();
        for (_, caller) in self.callers.drain() {
            let _ = caller.send(Err(err.clone()));
        }
    }

    /// What a fenced shard answers: it is owned by `owner`.
    fn ownership_lost(&self) -> Error {
        Error::ShardOwnershipLost {
            shard_id: self.core.shard_id,
            owner: self.owner.clone(),
        }
    }

    /// The store refused a write (a commit, a range renewal) because another process acquired
    /// the shard: the shard stops serving here. Requests wait (the shard stays busy) while the
    /// owner's address is read, then every one of them fails naming it.
    fn superseded(&mut self, ctx: &mut Context<Self>, e: &sundial_storage::Error) {
        error!(self.log, "shard ownership lost: another process owns this shard; it stops serving here";
            "shard_id" => self.core.shard_id, "error" => %e);
        self.busy = true;
        self.timers.clear();
        let store = self.store.clone();
        let shard_id = self.core.shard_id;
        let me = ctx.address();
        actix::spawn(async move {
            let owner = match store.get_shard(shard_id).await {
                Ok(row) => row.map(|r| r.owner).unwrap_or_default(),
                Err(_) => String::new(),
            };
            me.do_send(Superseded(owner));
        });
    }

    /// Arms a timer again whose batch did not commit (or whose run could not be read).
    fn rearm(&mut self, fire_ms: i64, task_id: i64, task: TaskInfo) {
        if self.held() {
            self.timers.insert((fire_ms, task_id), task);
        }
    }

    /// Holds a committed timer in memory if it fires within the window; a later one is read
    /// from the store when the window gets there.
    /// (A speculative timer is never stored, so it is always held.)
    fn arm(&mut self, fire_ms: i64, task_id: i64, task: TaskInfo) {
        // While the next window is read, a timer committed meanwhile may be missing from
        // that read: hold it already.
        let window_end = self
            .timer_window_end
            .max(self.loading_timers_until.unwrap_or(0));
        if fire_ms <= window_end || task.speculative {
            self.timers.insert((fire_ms, task_id), task);
        }
    }

    /// Moves the timer window on before it runs out: reads the timers that fire after the
    /// current window and up to the new one.
    fn advance_timer_window(&mut self, ctx: &mut Context<Self>, now: i64) {
        if self.loading_timers_until.is_some()
            || now.saturating_add(TIMER_WINDOW_MS / 2) < self.timer_window_end
        {
            return;
        }
        let (store, shard_id) = (self.store.clone(), self.core.shard_id);
        let (after, until) = (self.timer_window_end, now.saturating_add(TIMER_WINDOW_MS));
        self.loading_timers_until = Some(until);
        let read = async move { store.list_timer_tasks(shard_id, until, usize::MAX).await };
        ctx.spawn(read.into_actor(self).map(move |res, act, _| {
            act.loading_timers_until = None;
            // Re-acquired meanwhile: that acquire read its own window.
            if act.timer_window_end != after {
                return;
            }
            let Ok(rows) = res else {
                return; // Read again at the next tick.
            };
            for row in rows.into_iter().filter(|r| r.fire_time_ms > after) {
                if let Ok(task) = TaskInfo::decode(row.data.as_slice()) {
                    act.timers.insert((row.fire_time_ms, row.task_id), task);
                }
            }
            act.timer_window_end = until;
        }));
    }

    /// Records this shard's metrics and spans into `telemetry`.
    pub fn with_telemetry(mut self, telemetry: Telemetry) -> Self {
        self.telemetry = ShardTelemetry::new(telemetry, self.core.shard_id);
        self
    }

    fn drain(&mut self, ctx: &mut Context<Self>) {
        if !self.busy
            && let Some(owner) = self.releasing.take()
        {
            return self.release(owner);
        }
        if self.busy || (self.queue.is_empty() && !self.core.has_work()) {
            return;
        }
        self.busy = true;
        let ops = std::mem::take(&mut self.queue);
        let trace = self.telemetry.take_batch();
        let lookups = ops.iter().filter(|(_, r)| r.run().is_some()).count();
        let (currents, runs) = self.core.reads_for(ops.iter().map(|(_, r)| r));
        self.telemetry.cache(lookups, currents.len() + runs.len());
        let renew = (self.core.task_ids_left() < 10_000)
            .then(|| (self.core.range_id, self.address.clone()));
        let store = self.store.clone();
        let shard_id = self.core.shard_id;
        let me = ctx.address();
        let reads = opentelemetry::context::FutureExt::with_context(
            load(store, shard_id, currents, runs, renew),
            trace.parent(),
        );
        actix::spawn(async move {
            let result = reads.await;
            me.do_send(Loaded { ops, result, trace });
        });
    }

    fn dispatch(&mut self, ctx: &mut Context<Self>, ready: ReadyTask) {
        self.dispatch_attempt(ctx, ready, 1);
    }

    /// Carries out a transfer task; a transient failure is retried after a backoff.
    fn dispatch_attempt(&mut self, ctx: &mut Context<Self>, ready: ReadyTask, attempt: u32) {
        if !self.held() {
            return;
        }
        let cross_workflow = !matches!(
            ready.task.task_kind(),
            TaskKind::DispatchWorkflowTask | TaskKind::DispatchActivityTask
        );
        if cross_workflow && self.history.is_none() {
            // Peers arrive right after start; hold the task until then.
            self.awaiting_peers.push(ready);
            return;
        }
        let history = self.history.clone();
        let matching = self.matching.clone();
        let me = ctx.address();
        let log = self.log.clone();
        let fallback = ready.sticky_fallback();
        actix::spawn(async move {
            let task = ready.task;
            let result = match task.task_kind() {
                TaskKind::DispatchWorkflowTask => {
                    let key = Matching::key(&task.namespace_id, &task.task_queue, WORKFLOW_QUEUE);
                    match matching.add_task(key, task.clone(), task.sticky).await {
                        Err(Error::StickyWorkerUnavailable) if let Some(fallback) = fallback => {
                            let normal = Matching::key(
                                &task.namespace_id,
                                &fallback.task_queue,
                                WORKFLOW_QUEUE,
                            );
                            matching.add_task(normal, fallback, false).await
                        }
                        other => other,
                    }
                }
                TaskKind::DispatchActivityTask => {
                    let key = Matching::key(&task.namespace_id, &task.task_queue, ACTIVITY_QUEUE);
                    matching.add_task(key, task.clone(), false).await
                }
                _ => match history {
                    Some(history) => crate::transfer::carry_out(&history, task.clone()).await,
                    None => Err(Error::Unavailable("shard peers not known yet".into())),
                },
            };
            match result {
                // A speculative task's dispatch was never stored: nothing to delete.
                Ok(()) if task.speculative => {}
                Ok(()) => me.do_send(Ack(ready.task_id)),
                Err(
                    e @ (Error::Unavailable(_)
                    | Error::Storage(_)
                    | Error::Overloaded(_)
                    | Error::ShardOwnershipLost { .. }),
                ) => {
                    let wait = backoff(attempt);
                    warn!(log, "transfer task not dispatched; retrying";
                        "namespace_id" => &task.namespace_id, "workflow_id" => &task.workflow_id,
                        "run_id" => &task.run_id, "task_id" => ready.task_id,
                        "attempt" => attempt, "retry_in_ms" => wait.as_millis() as u64, "error" => %e);
                    tokio::time::sleep(wait).await;
                    me.do_send(Redispatch(ReadyTask { task, ..ready }, attempt));
                }
                Err(e) => {
                    error!(log, "transfer task failed; retried when the shard is next acquired";
                        "namespace_id" => &task.namespace_id, "workflow_id" => &task.workflow_id,
                        "run_id" => &task.run_id, "task_id" => ready.task_id, "error" => %e)
                }
            }
        });
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.ownership != Ownership::Serving {
            return;
        }
        let now = self.clock.now_ms();
        self.advance_timer_window(ctx, now);
        while let Some((&(fire, id), _)) = self.timers.first_key_value() {
            if fire > now {
                break;
            }
            let task = self.timers.remove(&(fire, id)).expect("present");
            // A timer is never answered: it takes no ticket.
            let ticket = Ticket(self.next_ticket);
            self.queue.push((ticket, Request::Timer(fire, id, task)));
        }
        if !self.queue.is_empty() {
            self.drain(ctx);
        } else if !self.core.transfer_acks.is_empty() && now - self.last_ack_flush_ms > 1_000 {
            self.last_ack_flush_ms = now;
            self.drain(ctx);
        }
        self.forget_gone_callers();
    }

    /// Forgets the callers that gave up waiting, here and in the shard's logic.
    fn forget_gone_callers(&mut self) {
        self.callers.retain(|_, caller| !caller.is_closed());
        let callers = &self.callers;
        self.core.forget(|t| !callers.contains_key(&t));
    }
}

async fn load(
    store: DynStore,
    shard_id: i32,
    currents: Vec<(String, String)>,
    runs: Vec<ExecutionKey>,
    renew: Option<(i64, Arc<str>)>,
) -> crate::Result<Vec<Load>> {
    let mut out = Vec::new();
    if let Some((range_id, address)) = renew {
        let renewed = store.renew_shard(shard_id, range_id, &address).await?;
        out.push(Load::Renewed(renewed));
    }
    for key in &runs {
        if let Some(row) = store.get_execution(shard_id, key).await? {
            out.push(Load::Run(row));
        }
    }
    for (ns, wf) in currents {
        let row = store.get_current_execution(shard_id, &ns, &wf).await?;
        if let Some(r) = &row {
            let key = ExecutionKey {
                namespace_id: ns.clone(),
                workflow_id: wf.clone(),
                run_id: r.run_id.clone(),
            };
            if !runs.contains(&key)
                && let Some(run) = store.get_execution(shard_id, &key).await?
            {
                out.push(Load::Run(run));
            }
        }
        out.push(Load::Current(ns, wf, row));
    }
    Ok(out)
}

impl Actor for HistoryShard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(100_000);
        if self.unowned_at_start {
            self.set_ownership(Ownership::Released);
        } else {
            self.acquire(ctx);
        }
        ctx.run_interval(TICK, |act, ctx| act.tick(ctx));
    }
}

impl Handler<Ready> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: Ready, ctx: &mut Self::Context) {
        match msg.0 {
            Ok(_) if self.releasing.is_some() => {
                // Told to give the shard up while it was being acquired.
                self.busy = false;
                self.drain(ctx);
            }
            Ok((range_id, transfer, timers)) => {
                self.acquire_failures = 0;
                self.set_ownership(Ownership::Serving);
                self.core.renew_range(range_id);
                for t in transfer {
                    self.dispatch(ctx, t);
                }
                for (fire, id, task) in timers {
                    self.timers.insert((fire, id), task);
                }
                self.busy = false;
                self.drain(ctx);
            }
            Err(_) if self.releasing.is_some() => {
                let owner = self.releasing.take().unwrap_or_default();
                self.release(owner);
            }
            Err(e) => {
                self.acquire_failures += 1;
                let wait = backoff(self.acquire_failures);
                error!(self.log, "shard could not be acquired; retrying";
                    "shard_id" => self.core.shard_id, "attempt" => self.acquire_failures,
                    "retry_in_ms" => wait.as_millis() as u64, "error" => %e);
                self.set_ownership(Ownership::Down);
                self.refuse_all(&Error::Unavailable(format!("shard unavailable: {e}")));
                ctx.notify_later(Acquire, wait);
            }
        }
    }
}

/// The shard's owner, read after the store refused this process's write.
#[derive(Message)]
#[rtype(result = "()")]
struct Superseded(String);

impl Handler<Superseded> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: Superseded, _: &mut Self::Context) {
        self.owner = msg.0;
        self.releasing = None;
        self.set_ownership(Ownership::Fenced);
        warn!(self.log, "shard fenced"; "shard_id" => self.core.shard_id, "owner" => &self.owner);
        self.refuse_all(&self.ownership_lost());
        // A timer window read while the owner was looked up may have armed more.
        self.timers.clear();
    }
}

impl Handler<Own> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: Own, ctx: &mut Self::Context) {
        match (msg.own, self.held()) {
            (true, true) => self.releasing = None,
            (true, false) => {
                info!(self.log, "taking the shard"; "shard_id" => self.core.shard_id,
                    "previous_owner" => &self.owner);
                self.forget_state();
                self.acquire_failures = 0;
                self.acquire(ctx);
            }
            (false, false) => {
                if !msg.owner.is_empty() {
                    self.owner = msg.owner;
                }
            }
            (false, true) if self.ownership == Ownership::Down => self.release(msg.owner),
            (false, true) => {
                self.releasing = Some(msg.owner);
                self.drain(ctx);
            }
        }
    }
}

impl Handler<Acquire> for HistoryShard {
    type Result = ();

    fn handle(&mut self, _: Acquire, ctx: &mut Self::Context) {
        if self.ownership == Ownership::Down {
            self.acquire(ctx);
        }
    }
}

impl Handler<Redispatch> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: Redispatch, ctx: &mut Self::Context) {
        self.dispatch_attempt(ctx, msg.0, msg.1 + 1);
    }
}

impl Handler<Submit> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: Submit, ctx: &mut Self::Context) {
        self.telemetry.queued(self.queue.len(), None);
        self.submit(msg.0, msg.1, ctx);
    }
}

impl Handler<SubmitTraced> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: SubmitTraced, ctx: &mut Self::Context) {
        self.telemetry.queued(self.queue.len(), Some(msg.2));
        self.submit(msg.0, msg.1, ctx);
    }
}

impl Handler<Ack> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: Ack, _: &mut Self::Context) {
        self.core.transfer_acks.push(msg.0);
    }
}

impl Handler<Loaded> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: Loaded, ctx: &mut Self::Context) {
        let loads = match msg.result {
            Ok(loads) => loads,
            Err(Error::Storage(e @ sundial_storage::Error::ShardOwnershipLost { .. })) => {
                // The range renewal found the shard taken: the batch's callers are answered
                // with the rest.
                return self.superseded(ctx, &e);
            }
            Err(e) => {
                let err = Error::Unavailable(format!("storage read failed: {e}"));
                for (ticket, request) in msg.ops {
                    match request {
                        // A due timer waits for the next tick instead of being lost.
                        Request::Timer(fire_ms, task_id, task) => {
                            self.rearm(fire_ms, task_id, task)
                        }
                        request => self.refuse(ticket, &request, &err),
                    }
                }
                self.busy = false;
                return self.drain(ctx);
            }
        };
        for l in loads {
            match l {
                Load::Renewed(range_id) => self.core.renew_range(range_id),
                Load::Run(row) => {
                    let key = row.key.clone();
                    if let Err(e) = self.core.insert_run(row) {
                        error!(self.log, "corrupt run"; "namespace_id" => &key.namespace_id,
                            "workflow_id" => &key.workflow_id, "run_id" => &key.run_id, "error" => %e);
                    }
                }
                Load::Current(ns, wf, row) => self.core.insert_current(&ns, &wf, row),
            }
        }
        let now = self.clock.now_ms();
        let mut trace = msg.trace;
        let ops = msg.ops.len();
        // A buffered query whose caller left frees its place before new queries come.
        if self.core.has_buffered_queries() {
            self.forget_gone_callers();
        }
        for (i, (ticket, request)) in msg.ops.into_iter().enumerate() {
            let namespace_id = request.run().map(|r| r.namespace_id);
            let search_attributes = namespace_id
                .as_ref()
                .and_then(|ns| self.history.as_ref()?.search_attributes(ns));
            let retention_ms = namespace_id
                .as_ref()
                .and_then(|ns| self.history.as_ref()?.retention_ms(ns));
            let env = Env {
                search_attributes,
                retention_ms,
                now_ms: now,
                new_run_id: uuid::Uuid::new_v4().to_string(),
                limits: self
                    .history
                    .as_ref()
                    .map(crate::History::limits)
                    .unwrap_or_default(),
            };
            let name = request.name();
            trace.apply(i, name, || self.core.apply(ticket, request, &env));
        }
        let history = &self.history;
        let types = |namespace_id: &str| history.as_ref()?.search_attributes(namespace_id);
        let (batch, effects, touched) = self.core.build_batch(&types);
        let observer = self.telemetry.commit(&batch, &trace, ops, &self.log);
        let store = self.store.clone();
        let (shard_id, range_id) = (self.core.shard_id, self.core.range_id);
        let me = ctx.address();
        actix::spawn(async move {
            let result = if batch.is_empty() {
                Ok(())
            } else {
                let commit = store.commit(shard_id, range_id, batch);
                observer.run(store.clone(), commit).await
            };
            me.do_send(Committed {
                result,
                effects,
                touched,
            });
        });
    }
}

impl Handler<Committed> for HistoryShard {
    type Result = ();

    fn handle(&mut self, msg: Committed, ctx: &mut Self::Context) {
        match msg.result {
            Ok(()) => {
                for answer in self.core.committed(&msg.touched) {
                    self.reply(answer);
                }
                for answer in msg.effects.replies {
                    self.reply(answer);
                }
                for t in msg.effects.timers {
                    self.arm(t.task.fire_time_ms, t.task_id, t.task);
                }
                for t in msg.effects.transfer {
                    self.dispatch(ctx, t);
                }
                self.busy = false;
                self.drain(ctx);
            }
            Err(e) => {
                error!(self.log, "shard commit failed"; "shard_id" => self.core.shard_id, "error" => %e);
                self.core.rolled_back(&msg.touched);
                if matches!(e, sundial_storage::Error::ShardOwnershipLost { .. }) {
                    // Nothing of the batch was written; its callers are answered with the rest.
                    return self.superseded(ctx, &e);
                }
                let err = Error::Unavailable(format!("commit failed: {e}"));
                for (ticket, _) in msg.effects.replies {
                    self.reply((ticket, Err(err.clone())));
                }
                // The outcome is unknown: the batch may or may not be stored. Never retry it
                // blindly: take the shard again and start from what the store holds (its runs,
                // pending transfer tasks and timers), as after a restart. Queued requests wait;
                // callers waiting in the dropped state (watchers, updates, buffered queries)
                // are told to retry.
                let queued: std::collections::HashSet<Ticket> = self
                    .queue
                    .iter()
                    .flat_map(|(t, r)| (t.0..t.0 + r.tickets()).map(Ticket))
                    .collect();
                let dropped: Vec<Ticket> = self
                    .callers
                    .keys()
                    .filter(|t| !queued.contains(t))
                    .copied()
                    .collect();
                for ticket in dropped {
                    self.reply((ticket, Err(err.clone())));
                }
                let limits = self.core.cache_limits;
                self.core = ShardCore::new(self.core.shard_id, 0);
                self.core.cache_limits = limits;
                self.timers.clear();
                self.acquire(ctx);
            }
        }
    }
}
