//! Membership through the store's `cluster_membership` table, as Temporal's membership monitor
//! keeps it: a process writes a row per role it runs (its id, the role's rpc address, when it
//! started, its latest heartbeat) every [`HEARTBEAT`], and reads the rows of the roles it calls.
//! A row whose heartbeat is older than [`ALIVE_WINDOW`] is a process that is gone; of the live
//! rows of a role, the most recently started process answers for it (one process per role for
//! now: shards and partitions do not move between processes yet). No host lists are needed.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use slog::{Logger, info, warn};
use sundial_storage::{DynStore, MemberRow};

use crate::{Clock, Result};

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
        let membership = Membership {
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
        for (role, address) in membership.own.iter() {
            info!(log, "joined the cluster"; "role" => role, "rpc_address" => address,
                "host_id" => &membership.host_id);
        }
        Ok(membership)
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
                match keeper.beat().await.and(keeper.refresh().await) {
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

    /// The live members of `role`, newest first, as last read.
    pub fn members(&self, role: &str) -> Vec<MemberRow> {
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
}
