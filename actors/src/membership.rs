//! Membership: which processes run which roles, and which of them are alive.
//!
//! Every process writes a row per role it runs into the store's `cluster_membership` table, as
//! Temporal's membership monitor keeps it (its id, the role's rpc address, its gossip address,
//! when it started, its latest heartbeat), every [`HEARTBEAT`], and reads the rows of the roles
//! it calls. The table is the seed list: no host lists are needed in the config.
//!
//! A process that gossips ([`crate::gossip`]) takes liveness from gossip: the members of a role
//! are the live, non-draining processes gossip shows running it. Gossip is trusted only once
//! it sees another process, or when the table lists nobody else alive: a process that sees
//! only itself while the table lists live peers is cut off from them ([`Membership::isolated`])
//! and keeps greeting them instead of acting on a view of one. Without gossip (or while
//! isolated), a row whose heartbeat is older than [`ALIVE_WINDOW`] is a process that is gone.
//! Of the members of a role, the most recently started one answers for a role that is not
//! spread over its members.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use slog::{Logger, info, warn};
use sundial_storage::{DynStore, MemberRow};

use crate::gossip::{Gossip, GossipSettings, SharedGossip};
use crate::{Clock, Error, Result};

/// How often a process renews its rows and reads the others'.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A row whose heartbeat is older than this is a process that is gone (a few missed beats).
pub const ALIVE_WINDOW: Duration = Duration::from_secs(5);
/// How long a row stays in the table without a heartbeat before any process deletes it.
const RECORD_TTL: Duration = Duration::from_secs(48 * 3600);

/// This process's rows and what it knows of the others'.
#[derive(Clone)]
pub struct Membership {
    store: DynStore,
    clock: Arc<dyn Clock>,
    /// This process's id, new at each start.
    pub host_id: String,
    session_start_ms: i64,
    /// The roles this process runs, with their rpc addresses.
    own: Arc<Vec<(String, String)>>,
    /// The roles it calls, and their live members (newest first), as last read.
    known: Arc<RwLock<HashMap<String, Vec<MemberRow>>>>,
    /// When [`Membership::resolve`] last read the table (unix millis), held while it reads so
    /// that callers resolving at once share one read.
    last_lookup_ms: Arc<tokio::sync::Mutex<i64>>,
    /// Set once the process has left ([`Membership::leave`]): its rows are not renewed.
    left: Arc<std::sync::atomic::AtomicBool>,
    /// Where this process gossips, as written in its rows (empty when it does not).
    gossip_address: Arc<str>,
    /// Its gossip, once started.
    gossip: SharedGossip,
}

/// How long a lookup's answer of [`Membership::resolve`] stands before a caller that finds no
/// member reads the table again.
const LOOKUP_INTERVAL_MS: i64 = 50;

impl Membership {
    /// Writes this process's rows (`own`: role and rpc address) and reads the members of the
    /// roles it calls (`watch`); [`Membership::keep_fresh`] then renews both. Fails when the
    /// store cannot be written or read.
    pub async fn join(
        store: DynStore,
        clock: Arc<dyn Clock>,
        own: Vec<(String, String)>,
        watch: Vec<String>,
        log: &Logger,
    ) -> Result<Membership> {
        Self::join_with(store, clock, own, watch, None, log).await
    }

    /// [`Membership::join`], then gossips as `gossip` says, seeded with the gossip addresses
    /// of the processes the table lists alive. Fails as `join` does, or when the gossip
    /// address cannot be bound.
    pub async fn join_gossiping(
        store: DynStore,
        clock: Arc<dyn Clock>,
        own: Vec<(String, String)>,
        watch: Vec<String>,
        gossip: GossipSettings,
        log: &Logger,
    ) -> Result<Membership> {
        Self::join_with(store, clock, own, watch, Some(gossip), log).await
    }

    async fn join_with(
        store: DynStore,
        clock: Arc<dyn Clock>,
        own: Vec<(String, String)>,
        watch: Vec<String>,
        gossip: Option<GossipSettings>,
        log: &Logger,
    ) -> Result<Membership> {
        let membership = Membership {
            gossip_address: gossip
                .as_ref()
                .map(|g| g.advertise.to_string())
                .unwrap_or_default()
                .into(),
            gossip: Arc::default(),
            store,
            session_start_ms: clock.now_ms(),
            clock,
            host_id: uuid::Uuid::new_v4().to_string(),
            own: Arc::new(own),
            known: Arc::new(RwLock::new(
                watch.into_iter().map(|role| (role, Vec::new())).collect(),
            )),
            last_lookup_ms: Arc::default(),
            left: Arc::default(),
        };
        membership.beat().await?;
        membership.refresh().await?;
        if let Some(settings) = gossip {
            let seeds = membership.seeds().await?;
            let gossip = Gossip::start(
                &settings,
                &membership.host_id,
                membership.session_start_ms,
                &membership.own,
                seeds.iter().map(ToString::to_string).collect(),
            )
            .await
            .map_err(|e| {
                Error::Internal(format!(
                    "gossip cannot listen on {} (udp): {e}",
                    settings.listen
                ))
            })?;
            info!(log, "gossiping"; "listen" => %settings.listen,
                "advertised" => %settings.advertise, "seeds" => ?seeds);
            let _ = membership.gossip.set(gossip);
        }
        for (role, address) in membership.own.iter() {
            info!(log, "joined the cluster"; "role" => role, "rpc_address" => address,
                "host_id" => &membership.host_id);
        }
        Ok(membership)
    }

    /// The gossip addresses of the other processes the table lists alive, whatever their role.
    async fn seeds(&self) -> Result<Vec<std::net::SocketAddr>> {
        let since = self
            .clock
            .now_ms()
            .saturating_sub(ALIVE_WINDOW.as_millis() as i64);
        let mut seeds = Vec::new();
        for role in ["frontend", "history", "matching", "worker"] {
            for row in self.store.list_members(role, since).await? {
                if row.host_id == self.host_id {
                    continue;
                }
                if let Ok(address) = row.gossip_address.parse()
                    && !seeds.contains(&address)
                {
                    seeds.push(address);
                }
            }
        }
        Ok(seeds)
    }

    /// The members the table lists alive that gossip does not see: greeted at each heartbeat,
    /// so that a process that started alone, or was cut off, finds the others again.
    fn greet_unseen(&self, gossip: &Gossip) {
        let seen: Vec<String> = gossip.live().into_iter().map(|p| p.host_id).collect();
        let known = self.known.read().unwrap_or_else(|p| p.into_inner());
        for row in known.values().flatten() {
            if row.host_id == self.host_id || seen.contains(&row.host_id) {
                continue;
            }
            if let Ok(address) = row.gossip_address.parse() {
                gossip.greet(address);
            }
        }
    }

    /// True when this process gossips but sees only itself while the table lists other live
    /// processes: it is cut off from them (or has not met them yet), and its view of one is not
    /// to be acted on. It keeps greeting them meanwhile.
    pub fn isolated(&self) -> bool {
        let Some(gossip) = self.gossip.get() else {
            return false;
        };
        if gossip.sees_others() {
            return false;
        }
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .any(|row| row.host_id != self.host_id)
    }

    /// The gossip to take liveness from: this process gossips and is not isolated.
    fn trusted_gossip(&self) -> Option<&Gossip> {
        self.gossip.get().filter(|_| !self.isolated())
    }

    /// The live, non-draining members of `role` as gossip sees them, newest first.
    fn gossip_members(&self, gossip: &Gossip, role: &str) -> Vec<MemberRow> {
        let mut members: Vec<MemberRow> = gossip
            .live()
            .into_iter()
            .filter(|peer| !peer.draining)
            .filter_map(|peer| {
                let rpc_address = peer.roles.get(role)?.clone();
                Some(MemberRow {
                    host_id: peer.host_id,
                    role: role.to_string(),
                    rpc_address,
                    gossip_address: peer.gossip_address.to_string(),
                    session_start_ms: peer.started_ms,
                    last_heartbeat_ms: 0,
                    record_expiry_ms: 0,
                })
            })
            .collect();
        members.sort_by(|a, b| {
            (b.session_start_ms, &b.host_id).cmp(&(a.session_start_ms, &a.host_id))
        });
        members
    }

    /// Renews this process's rows and re-reads the others' every [`HEARTBEAT`], on a task of
    /// its own, for as long as the process runs.
    pub fn keep_fresh(&self, log: Logger) {
        let keeper = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut failing = false;
            loop {
                ticks.tick().await;
                let renewed = keeper.beat().await.and(keeper.refresh().await);
                if let Some(gossip) = keeper.gossip.get() {
                    keeper.greet_unseen(gossip);
                }
                match renewed {
                    Ok(()) if failing => {
                        info!(log, "membership heartbeats reach the store again");
                        failing = false;
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        warn!(log, "membership heartbeat failed; retrying"; "error" => %e);
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
    }

    /// Leaves the cluster: this process's rows are written as gone (no heartbeat), so the
    /// others stop counting it at their next read, and are not renewed any more.
    pub async fn leave(&self) -> Result<()> {
        self.left.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(gossip) = self.gossip.get() {
            gossip.drain().await;
        }
        let now = self.clock.now_ms();
        self.write_rows(0, now).await
    }

    /// Writes this process's rows with heartbeat `heartbeat_ms`, to expire at `expiry_ms`.
    async fn write_rows(&self, heartbeat_ms: i64, expiry_ms: i64) -> Result<()> {
        for (role, address) in self.own.iter() {
            self.store
                .upsert_member(MemberRow {
                    host_id: self.host_id.clone(),
                    role: role.clone(),
                    rpc_address: address.clone(),
                    gossip_address: self.gossip_address.to_string(),
                    session_start_ms: self.session_start_ms,
                    last_heartbeat_ms: heartbeat_ms,
                    record_expiry_ms: expiry_ms,
                })
                .await?;
        }
        Ok(())
    }

    /// The store the table lives in.
    pub fn store(&self) -> &DynStore {
        &self.store
    }

    /// True once the process has left.
    pub fn has_left(&self) -> bool {
        self.left.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Renews this process's rows and deletes rows long expired.
    async fn beat(&self) -> Result<()> {
        if self.has_left() {
            return Ok(());
        }
        let now = self.clock.now_ms();
        self.write_rows(now, now.saturating_add(RECORD_TTL.as_millis() as i64))
            .await?;
        self.store.prune_members(now).await?;
        Ok(())
    }

    /// Reads the live members of each watched role.
    pub async fn refresh(&self) -> Result<()> {
        let since = self
            .clock
            .now_ms()
            .saturating_sub(ALIVE_WINDOW.as_millis() as i64);
        let roles: Vec<String> = self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for role in roles {
            self.read_members(&role, since).await?;
        }
        Ok(())
    }

    /// Reads the members of `role` alive since `since_ms` and keeps them as known; answers the
    /// address of the one that answers for it.
    async fn read_members(&self, role: &str, since_ms: i64) -> Result<Option<String>> {
        let members = self.store.list_members(role, since_ms).await?;
        let address = members.first().map(|m| m.rpc_address.clone());
        self.known
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(role.to_string(), members);
        Ok(address)
    }

    /// The rpc address of the process that answers for `role` (the most recently started of
    /// its live members), as last read.
    pub fn address_of(&self, role: &str) -> Option<String> {
        if let Some(gossip) = self.trusted_gossip() {
            return self
                .gossip_members(gossip, role)
                .first()
                .map(|m| m.rpc_address.clone());
        }
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(role)?
            .first()
            .map(|m| m.rpc_address.clone())
    }

    /// [`Membership::address_of`], reading the table first when no member of `role` is known:
    /// a process started before the role's process would otherwise refuse calls until its next
    /// refresh, up to a [`HEARTBEAT`] after the others already reach the role. Callers that
    /// find none at once share one read, and a read stands for [`LOOKUP_INTERVAL_MS`].
    pub async fn resolve(&self, role: &str) -> Option<String> {
        if let Some(address) = self.address_of(role) {
            return Some(address);
        }
        let mut last = self.last_lookup_ms.lock().await;
        // Another caller may have read it while this one waited.
        if let Some(address) = self.address_of(role) {
            return Some(address);
        }
        let now = self.clock.now_ms();
        if now.saturating_sub(*last) < LOOKUP_INTERVAL_MS {
            return None;
        }
        *last = now;
        let since = now.saturating_sub(ALIVE_WINDOW.as_millis() as i64);
        self.read_members(role, since).await.ok()?
    }

    /// The live members of `role`, newest first, as gossip last saw them (or, without trusted
    /// gossip, as the table was last read).
    pub fn members(&self, role: &str) -> Vec<MemberRow> {
        if let Some(gossip) = self.trusted_gossip() {
            return self.gossip_members(gossip, role);
        }
        self.known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(role)
            .cloned()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sundial_storage::memory::MemoryStore;

    struct At(std::sync::atomic::AtomicI64);
    impl Clock for At {
        fn now_ms(&self) -> i64 {
            self.0.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    fn log() -> Logger {
        Logger::root(slog::Discard, slog::o!())
    }

    #[tokio::test]
    async fn the_newest_live_process_answers_for_a_role_and_a_silent_one_drops_out() {
        let store: DynStore = Arc::new(MemoryStore::new());
        let clock = Arc::new(At(1_000_000.into()));
        let own = |address: &str| vec![("history".to_string(), address.to_string())];
        let frontend = Membership::join(
            store.clone(),
            clock.clone(),
            vec![],
            vec!["history".into()],
            &log(),
        )
        .await
        .unwrap();
        assert_eq!(frontend.address_of("history"), None);
        let first = Membership::join(
            store.clone(),
            clock.clone(),
            own("127.0.0.1:7234"),
            vec![],
            &log(),
        )
        .await
        .unwrap();
        frontend.refresh().await.unwrap();
        assert_eq!(
            frontend.address_of("history").as_deref(),
            Some("127.0.0.1:7234")
        );
        // A second history process starts later: it answers from then on.
        clock
            .0
            .fetch_add(1_000, std::sync::atomic::Ordering::Relaxed);
        let _second = Membership::join(
            store.clone(),
            clock.clone(),
            own("127.0.0.2:7234"),
            vec![],
            &log(),
        )
        .await
        .unwrap();
        frontend.refresh().await.unwrap();
        assert_eq!(
            frontend.address_of("history").as_deref(),
            Some("127.0.0.2:7234")
        );
        assert_eq!(frontend.members("history").len(), 2);
        // Past the alive window without a heartbeat from either, neither is known; the first
        // one beats again and answers.
        clock.0.fetch_add(
            ALIVE_WINDOW.as_millis() as i64 + 1,
            std::sync::atomic::Ordering::Relaxed,
        );
        frontend.refresh().await.unwrap();
        assert_eq!(frontend.address_of("history"), None);
        first.beat().await.unwrap();
        frontend.refresh().await.unwrap();
        assert_eq!(
            frontend.address_of("history").as_deref(),
            Some("127.0.0.1:7234")
        );
    }

    /// A process that started before the role's process finds it as soon as it needs it, not
    /// at its next refresh.
    #[tokio::test]
    async fn a_role_that_joined_since_the_last_read_is_found_when_first_needed() {
        let store: DynStore = Arc::new(MemoryStore::new());
        let clock = Arc::new(At(1_000_000.into()));
        let matching = Membership::join(
            store.clone(),
            clock.clone(),
            vec![("matching".into(), "127.0.0.1:7235".into())],
            vec!["history".into()],
            &log(),
        )
        .await
        .unwrap();
        assert_eq!(matching.resolve("history").await, None);
        let _history = Membership::join(
            store.clone(),
            clock.clone(),
            vec![("history".into(), "127.0.0.1:7234".into())],
            vec![],
            &log(),
        )
        .await
        .unwrap();
        // The lookup that found none a moment ago stands...
        assert_eq!(matching.resolve("history").await, None);
        // ...for a moment only: then the next caller reads the table, without a refresh.
        clock
            .0
            .fetch_add(LOOKUP_INTERVAL_MS, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            matching.resolve("history").await.as_deref(),
            Some("127.0.0.1:7234")
        );
        assert_eq!(
            matching.address_of("history").as_deref(),
            Some("127.0.0.1:7234")
        );
    }

    /// A UDP address on loopback that was free a moment ago.
    fn free_udp() -> std::net::SocketAddr {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    async fn gossiping(store: &DynStore, clock: &Arc<At>, rpc: &str) -> Membership {
        let address = free_udp();
        Membership::join_gossiping(
            store.clone(),
            clock.clone(),
            vec![("history".into(), rpc.into())],
            vec!["history".into()],
            GossipSettings {
                listen: address,
                advertise: address,
                cluster_id: "test".into(),
            },
            &log(),
        )
        .await
        .unwrap()
    }

    fn history(membership: &Membership) -> Vec<String> {
        let mut members: Vec<String> = membership
            .members("history")
            .into_iter()
            .map(|m| m.rpc_address)
            .collect();
        members.sort();
        members
    }

    /// Waits (10 s at most) for `done`, checking at each gossip round.
    async fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(crate::gossip::GOSSIP_EVERY).await;
        }
    }

    /// The second process finds the first through the table (its seeds), both take the
    /// members from gossip, and one that leaves stops counting at once for the other.
    #[tokio::test]
    async fn gossip_meets_the_processes_the_table_lists_and_drops_one_that_leaves() {
        let store: DynStore = Arc::new(MemoryStore::new());
        let clock = Arc::new(At(1_000_000.into()));
        let a = gossiping(&store, &clock, "a:7234").await;
        assert_eq!(history(&a), ["a:7234"]);
        let b = gossiping(&store, &clock, "b:7234").await;
        let both = ["a:7234".to_string(), "b:7234".to_string()];
        until("both see both", || {
            history(&a) == both && history(&b) == both
        })
        .await;
        assert!(!a.isolated() && !b.isolated());
        // Its rows say where it gossips.
        let rows = store.list_members("history", 0).await.unwrap();
        assert!(
            rows.iter()
                .all(|r| r.gossip_address.parse::<std::net::SocketAddr>().is_ok())
        );
        b.leave().await.unwrap();
        until("a drops b once it drains", || history(&a) == ["a:7234"]).await;
    }

    /// A process whose gossip reaches nobody while the table lists a live peer does not act on
    /// its view of one; it greets the members the table lists until gossip reaches one.
    #[tokio::test]
    async fn a_process_that_sees_only_itself_while_the_table_lists_peers_is_isolated() {
        let store: DynStore = Arc::new(MemoryStore::new());
        let clock = Arc::new(At(1_000_000.into()));
        // A peer that beats in the table but whose gossip nobody can reach.
        store
            .upsert_member(MemberRow {
                host_id: "unreachable".into(),
                role: "history".into(),
                rpc_address: "u:7234".into(),
                gossip_address: free_udp().to_string(),
                session_start_ms: 1,
                last_heartbeat_ms: clock.now_ms(),
                record_expiry_ms: i64::MAX,
            })
            .await
            .unwrap();
        let c = gossiping(&store, &clock, "c:7234").await;
        assert!(c.isolated());
        // Its view is the table's then, not gossip's view of one.
        assert_eq!(history(&c), ["c:7234", "u:7234"]);
        // Another process joins: its seeds include c, so c meets it.
        let d = gossiping(&store, &clock, "d:7234").await;
        until("c meets d", || !c.isolated()).await;
        until("c sees d", || history(&c) == ["c:7234", "d:7234"]).await;
        drop(d);
    }
}
