//! `sundial-actors`: the actix actors of a node and the cheap handles other code holds.
//!
//! Owns `HistoryShard` (one per history shard: group commit, durable timer queue),
//! `TaskQueuePartition` (one per task-queue partition: long poll, sync match, durable backlog),
//! the namespace registry and the query registry. Actors are thin: the shard's logic lives in
//! [`shard_core::ShardCore`], testable without actix. Callers hold [`History`] and
//! [`matching::Matching`] handles, never raw addresses.
//!
//! Must not depend on tonic.

mod error;
pub mod gossip;
pub mod matching;
mod matching_service;
pub mod matching_stats;
pub mod membership;
pub mod namespaces;
pub mod ops;
pub mod queries;
pub mod query_buffer;
pub mod services;
pub mod shard;
pub mod shard_core;
pub mod shard_owners;
#[cfg(test)]
mod shard_ownership_tests;
pub mod telemetry;
#[cfg(test)]
mod testkit;
mod transfer;
pub mod updates;
pub mod visibility;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use slog::Logger;
use sundial_storage::DynStore;
use tokio::sync::oneshot;

pub use error::{Error, Result};
pub use matching::Matching;
pub use namespaces::Namespaces;
pub use queries::Queries;
pub use services::{
    BoxFuture, HistoryService, MatchingClient, MatchingService, Poll, PolledWorkflowTask, Reply,
};
pub use telemetry::Telemetry;

use crate::ops::{FromResponse, Request, Response};
use crate::shard::{HistoryShard, Submit, SubmitTraced};
use crate::telemetry::ActorKind;

/// Where the time comes from, so tests can control it.
pub trait Clock: Send + Sync + 'static {
    /// Now, unix millis.
    fn now_ms(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// The shard a workflow lives on: a stable hash of `namespace_id + "_" + workflow_id`, 1-based.
pub fn shard_for(namespace_id: &str, workflow_id: &str, num_shards: i32) -> i32 {
    // FNV-1a, 32 bits: stable across builds and platforms.
    let mut hash: u32 = 0x811c_9dc5;
    for b in namespace_id
        .bytes()
        .chain(std::iter::once(b'_'))
        .chain(workflow_id.bytes())
    {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    (hash % num_shards.max(1) as u32) as i32 + 1
}

/// The history shards of this process: the local [`HistoryService`].
#[derive(Clone)]
pub struct LocalHistory {
    shards: Arc<Vec<Addr<HistoryShard>>>,
    telemetry: Telemetry,
    /// One flag per shard, set while it serves.
    serving: Arc<Vec<Arc<AtomicBool>>>,
    /// One flag per shard, set while this process is meant to own it (every shard unless
    /// started as a cluster member).
    wanted: Arc<Vec<AtomicBool>>,
}

impl LocalHistory {
    /// Starts `num_shards` shards on `arbiters`, offering their tasks to `matching`; each
    /// acquires its shard at once.
    fn start(
        store: &DynStore,
        num_shards: i32,
        (log, clock, telemetry): (&Logger, &Arc<dyn Clock>, &Telemetry),
        matching: &MatchingClient,
        arbiters: &[ArbiterHandle],
        address: Arc<str>,
        member: bool,
    ) -> Self {
        let serving: Vec<Arc<AtomicBool>> = (0..num_shards.max(1))
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        let wanted = (0..num_shards.max(1))
            .map(|_| AtomicBool::new(!member))
            .collect();
        let shards = (1..=num_shards.max(1))
            .map(|shard_id| {
                let (store, matching, clock, log) =
                    (store.clone(), matching.clone(), clock.clone(), log.clone());
                let (telemetry, address) = (telemetry.clone(), address.clone());
                let flag = serving[(shard_id - 1) as usize].clone();
                let arbiter = &arbiters[(shard_id - 1) as usize % arbiters.len()];
                HistoryShard::start_in_arbiter(arbiter, move |_| {
                    let shard = HistoryShard::new(shard_id, store, matching, clock, log)
                        .with_telemetry(telemetry)
                        .with_serving_flag(flag)
                        .with_address(address);
                    if member { shard.unowned() } else { shard }
                })
            })
            .collect();
        LocalHistory {
            shards: Arc::new(shards),
            telemetry: telemetry.clone(),
            serving: Arc::new(serving),
            wanted: Arc::new(wanted),
        }
    }

    /// Tells shard `shard_id` whether this process owns it now (`owner`: the member that does
    /// otherwise, when known). A shard told it is owned here is acquired unless it is held
    /// already; one told it is not is released once its batch in flight is done.
    pub fn own(&self, shard_id: i32, own: bool, owner: String) {
        let Some(i) = usize::try_from(shard_id - 1)
            .ok()
            .filter(|i| *i < self.shards.len())
        else {
            return;
        };
        self.wanted[i].store(own, Ordering::Relaxed);
        self.shards[i].do_send(crate::shard::Own { own, owner });
    }

    /// The shards that serve here now.
    pub fn serving_shards(&self) -> Vec<i32> {
        (1..)
            .zip(self.serving.iter())
            .filter(|(_, s)| s.load(Ordering::Relaxed))
            .map(|(id, _)| id)
            .collect()
    }

    /// How many shards there are.
    pub fn num_shards(&self) -> i32 {
        self.shards.len() as i32
    }
}

impl HistoryService for LocalHistory {
    fn submit(&self, shard: i32, request: Request) -> BoxFuture<'_, Result<Vec<Reply>>> {
        Box::pin(async move {
            let addr = usize::try_from(shard - 1)
                .ok()
                .and_then(|i| self.shards.get(i))
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "history shard {shard} is not in 1..={}",
                        self.shards.len()
                    ))
                })?;
            let (senders, receivers): (Vec<_>, Vec<_>) =
                (0..request.tickets()).map(|_| oneshot::channel()).unzip();
            // Counted out of `mailbox_depth` when the shard takes it from its queue.
            self.telemetry.mailbox(ActorKind::HistoryShard, 1);
            match self.telemetry.caller_context() {
                None => addr.send(Submit(request, senders)).await,
                Some(cx) => addr.send(SubmitTraced(request, senders, cx)).await,
            }
            .map_err(|e| Error::Unavailable(format!("history shard {shard}: {e}")))?;
            Ok(receivers
                .into_iter()
                .map(move |rx: oneshot::Receiver<Result<Response>>| -> Reply {
                    Box::pin(async move {
                        rx.await.map_err(|_| {
                            Error::Unavailable(format!("history shard {shard} dropped the request"))
                        })?
                    })
                })
                .collect())
        })
    }

    fn serving(&self) -> BoxFuture<'_, bool> {
        let all = self
            .serving
            .iter()
            .zip(self.wanted.iter())
            .all(|(s, w)| s.load(Ordering::Relaxed) || !w.load(Ordering::Relaxed));
        Box::pin(async move { all })
    }

    fn serving_shards(&self) -> BoxFuture<'_, Vec<i32>> {
        let shards = LocalHistory::serving_shards(self);
        Box::pin(async move { shards })
    }

    fn refresh_namespaces(&self) -> BoxFuture<'_, Result<()>> {
        // The shards read the registry of this process, which its frontend keeps current.
        Box::pin(async { Ok(()) })
    }
}

/// The history service of a cluster member: a shard this process owns (by `owners`) is
/// served by its local shards, any other by `remote`, which reaches the shard's owner.
struct RoutedHistory {
    owners: shard_owners::ShardOwners,
    /// Where this process serves history.
    address: String,
    local: LocalHistory,
    remote: Arc<dyn HistoryService>,
}

impl RoutedHistory {
    fn is_local(&self, shard_id: i32) -> bool {
        self.owners
            .owner(shard_id)
            .is_none_or(|owner| owner == self.address)
    }
}

impl HistoryService for RoutedHistory {
    fn submit(&self, shard_id: i32, request: Request) -> BoxFuture<'_, Result<Vec<Reply>>> {
        if self.is_local(shard_id) {
            self.local.submit(shard_id, request)
        } else {
            self.remote.submit(shard_id, request)
        }
    }

    fn serving(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let served = self.serving_shards().await;
            (1..=self.local.num_shards()).all(|s| served.binary_search(&s).is_ok())
        })
    }

    fn serving_shards(&self) -> BoxFuture<'_, Vec<i32>> {
        Box::pin(async move {
            let mut shards = self.local.serving_shards();
            shards.extend(self.remote.serving_shards().await);
            shards.sort_unstable();
            shards.dedup();
            shards
        })
    }

    fn refresh_namespaces(&self) -> BoxFuture<'_, Result<()>> {
        self.remote.refresh_namespaces()
    }
}

/// The cheap handle to the history shards (of this process or another, through
/// [`HistoryService`]), with the registries this process keeps for callers.
#[derive(Clone)]
pub struct History {
    service: Arc<dyn HistoryService>,
    num_shards: i32,
    /// The store the shards write, for reads of committed history.
    pub store: DynStore,
    /// The platform limits in force (dynamic config; replaced on reload).
    limits: Arc<std::sync::RwLock<sundial_engine::Limits>>,
    /// Custom search attributes by namespace id (kept by the namespace registry).
    search_attributes: namespaces::SearchAttributeRegistry,
    /// Retention by namespace id (kept by the namespace registry).
    retention: namespaces::RetentionRegistry,
}

impl History {
    /// A handle over `service`, which serves `num_shards` shards of `store`.
    pub fn new(service: Arc<dyn HistoryService>, num_shards: i32, store: DynStore) -> Self {
        Self {
            service,
            num_shards: num_shards.max(1),
            store,
            limits: Arc::default(),
            search_attributes: Default::default(),
            retention: Default::default(),
        }
    }

    /// True when every shard serves (none is being acquired, down or fenced).
    pub async fn serving(&self) -> bool {
        self.service.serving().await
    }

    /// Makes the history shards see a namespace change before the caller answers (see
    /// [`HistoryService::refresh_namespaces`]).
    pub async fn refresh_namespaces(&self) -> Result<()> {
        self.service.refresh_namespaces().await
    }

    /// The platform limits in force.
    pub fn limits(&self) -> sundial_engine::Limits {
        *self.limits.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the platform limits (a dynamic-config reload).
    pub fn set_limits(&self, limits: sundial_engine::Limits) {
        *self.limits.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// The custom search attributes of a namespace, if the namespace registry has read it.
    pub fn search_attributes(
        &self,
        namespace_id: &str,
    ) -> Option<Arc<sundial_engine::search_attributes::SearchAttributeTypes>> {
        self.search_attributes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace_id)
            .cloned()
    }

    /// The retention of a namespace, if the namespace registry has read it.
    pub fn retention_ms(&self, namespace_id: &str) -> Option<i64> {
        self.retention
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(namespace_id)
            .copied()
    }

    /// Number of shards.
    pub fn num_shards(&self) -> i32 {
        self.num_shards
    }

    /// The shard of a workflow.
    pub fn shard_id(&self, namespace_id: &str, workflow_id: &str) -> i32 {
        shard_for(namespace_id, workflow_id, self.num_shards())
    }

    /// Sends a request to the workflow's shard and waits for its reply (which comes after the
    /// commit), read as the type the request is answered with.
    pub async fn call<T: FromResponse>(
        &self,
        namespace_id: &str,
        workflow_id: &str,
        request: Request,
    ) -> Result<T> {
        let mut replies = self.submit(namespace_id, workflow_id, request).await?;
        if replies.is_empty() {
            return Err(Error::Internal("a request with no reply was called".into()));
        }
        let first = replies.remove(0);
        crate::ops::expect(first.await)
    }

    /// Sends a request to the workflow's shard; its replies arrive in order on the futures
    /// returned, one per reply it gets ([`Request::tickets`]).
    pub async fn submit(
        &self,
        namespace_id: &str,
        workflow_id: &str,
        request: Request,
    ) -> Result<Vec<Reply>> {
        let shard = self.shard_id(namespace_id, workflow_id);
        self.service.submit(shard, request).await
    }
}

/// Everything a node runs, with handles to reach it.
#[derive(Clone)]
pub struct Node {
    /// History shards.
    pub history: History,
    /// Matching partitions.
    pub matching: MatchingClient,
    /// Namespaces.
    pub namespaces: Namespaces,
    /// The clock.
    pub clock: Arc<dyn Clock>,
    /// Metrics and traces (disabled unless started with [`Node::start_observed`]).
    pub telemetry: Telemetry,
    /// The node's log (its system work logs here too).
    pub log: Logger,
    /// The history shards of this process, when it runs the history role.
    pub local_history: Option<LocalHistory>,
    /// The matching partitions of this process, when it runs the matching role.
    pub local_matching: Option<Matching>,
    arbiters: Vec<ArbiterHandle>,
}

/// Where a process's services run: the address it serves history at, and the services it
/// uses from other processes instead of running them itself.
#[derive(Clone, Default)]
pub struct Placement {
    /// The address other processes reach this one's history service at (`host:port`),
    /// recorded as the owner of every shard it acquires, so a process that lost a shard can
    /// name its new owner. Empty when nothing else reaches it (tests).
    pub address: String,
    /// The history service of other processes. Without [`Placement::shard_owners`], this
    /// process runs no shards and every request goes there.
    pub history: Option<Arc<dyn HistoryService>>,
    /// Set when this process is one of a cluster's history members: its shards start
    /// released and are taken as they are assigned ([`LocalHistory::own`]), and a request for a
    /// shard `shard_owners` says another member owns goes to [`Placement::history`].
    pub shard_owners: Option<shard_owners::ShardOwners>,
    /// The matching service of another process.
    pub matching: Option<MatchingClient>,
    /// How many threads the shards and partitions run on; one per core when `None`.
    pub actor_threads: Option<usize>,
}

/// Starts `count` actor threads (one actix system each).
fn start_arbiters(count: usize) -> Vec<ArbiterHandle> {
    (0..count.max(1))
        .map(|i| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("sundial-actors-{i}"))
                .spawn(move || {
                    let system = System::new();
                    let _ = tx.send(Arbiter::current());
                    system.run()
                })
                .expect("actor thread starts");
            rx.recv().expect("actor system starts")
        })
        .collect()
}

impl Node {
    /// Starts the actors of a node on their own thread (an actix system) and returns the
    /// handles. `num_shards` history shards are acquired right away.
    pub fn start(store: DynStore, num_shards: i32, log: Logger) -> Node {
        Self::start_with_clock(store, num_shards, log, Arc::new(SystemClock))
    }

    /// [`Node::start`] with a given clock.
    pub fn start_with_clock(
        store: DynStore,
        num_shards: i32,
        log: Logger,
        clock: Arc<dyn Clock>,
    ) -> Node {
        Self::start_observed(store, num_shards, log, clock, Telemetry::default())
    }

    /// [`Node::start_with_clock`] recording metrics and traces into `telemetry`. The store is
    /// used as given: wrap it with [`Telemetry::instrument_store`] for persistence metrics.
    pub fn start_observed(
        store: DynStore,
        num_shards: i32,
        log: Logger,
        clock: Arc<dyn Clock>,
        telemetry: Telemetry,
    ) -> Node {
        Self::start_services(
            store,
            num_shards,
            log,
            clock,
            telemetry,
            Placement::default(),
        )
    }

    /// [`Node::start_observed`] placed by `placement`: the history shards and the matching
    /// partitions run here unless it names the service of another process to use instead.
    pub fn start_services(
        store: DynStore,
        num_shards: i32,
        log: Logger,
        clock: Arc<dyn Clock>,
        telemetry: Telemetry,
        placement: Placement,
    ) -> Node {
        // Shards and partitions spread over one actor thread per core unless placed otherwise.
        let threads = placement
            .actor_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let arbiters = start_arbiters(threads);
        let local_matching = placement.matching.is_none().then(|| {
            Matching::new(store.clone(), clock.clone(), arbiters[0].clone())
                .spread_over(arbiters.clone())
                .with_telemetry(telemetry.clone())
        });
        let matching: MatchingClient = match (&placement.matching, &local_matching) {
            (Some(remote), _) => remote.clone(),
            (None, Some(local)) => Arc::new(local.clone()),
            (None, None) => unreachable!("matching runs here when it runs nowhere else"),
        };
        let member = placement.shard_owners.is_some();
        let local_history = (placement.history.is_none() || member).then(|| {
            LocalHistory::start(
                &store,
                num_shards,
                (&log, &clock, &telemetry),
                &matching,
                &arbiters,
                Arc::from(placement.address.as_str()),
                member,
            )
        });
        let service: Arc<dyn HistoryService> =
            match (placement.history, placement.shard_owners, &local_history) {
                (Some(remote), Some(owners), Some(local)) => Arc::new(RoutedHistory {
                    owners,
                    address: placement.address.clone(),
                    local: local.clone(),
                    remote,
                }),
                (Some(remote), _, _) => remote,
                (None, _, Some(local)) => Arc::new(local.clone()),
                (None, _, None) => unreachable!("history runs here when it runs nowhere else"),
            };
        let history = History::new(service, num_shards, store.clone());
        if let Some(local) = &local_matching {
            local.set_history(history.clone());
        }
        if let Some(local) = &local_history {
            for shard in local.shards.iter() {
                shard.do_send(crate::shard::SetHistory(history.clone()));
            }
        }
        Node {
            namespaces: Namespaces::new(store)
                .with_registry(history.search_attributes.clone())
                .with_retention_registry(history.retention.clone()),
            history,
            matching,
            local_history,
            local_matching,
            clock,
            telemetry,
            log,
            arbiters,
        }
    }

    /// Runs `future` on the first actor thread, beside the actors that live there: a server
    /// spawned there hands a call to such an actor, and gets its reply, without waking another
    /// thread.
    pub fn spawn_on_actor_thread(&self, future: impl Future<Output = ()> + Send + 'static) {
        self.arbiters[0].spawn(future);
    }

    /// Stops the actor threads.
    pub fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_hash_is_stable_and_in_range() {
        assert_eq!(shard_for("ns", "wf", 4), shard_for("ns", "wf", 4));
        for i in 0..100 {
            let s = shard_for("ns", &format!("wf-{i}"), 4);
            assert!((1..=4).contains(&s));
        }
        assert_eq!(shard_for("ns", "anything", 1), 1);
    }
}
