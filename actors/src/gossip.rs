//! Gossip membership: which processes are alive, and what each runs, as `chitchat` (scuttlebutt
//! gossip with a phi-accrual failure detector) sees it. Each process gossips on one UDP
//! address and publishes, as its node state, the rpc address of each role it runs, when it
//! started and whether it is draining (leaving). Liveness comes from the failure detector: a
//! process whose heartbeats stop reaching the others, directly or through a third process, is
//! dead to them after about [`PHI_THRESHOLD`] gossip rounds.
//!
//! Seeds are not configured: [`crate::membership::Membership`] finds them in the
//! `cluster_membership` table, where every process writes its gossip address, and greets the
//! members the table lists but gossip does not see yet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::UdpTransport;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, NodeState, ProtocolVersion,
    spawn_chitchat,
};
use tokio::sync::watch;

/// How often a process gossips with a few of the others (and beats).
pub const GOSSIP_EVERY: Duration = Duration::from_millis(250);
/// The failure detector's threshold: a process is dead once its silence is this many times its
/// usual interval between heartbeats (about 3 s at [`GOSSIP_EVERY`]). Lower detects sooner but
/// counts a process that was briefly starved of CPU as gone.
pub const PHI_THRESHOLD: f64 = 12.0;
/// How long a dead process is remembered before it is forgotten (a process that comes back
/// after that joins as a newcomer).
const FORGET_DEAD_AFTER: Duration = Duration::from_secs(3600);

/// The node-state key that holds a role's rpc address.
fn role_key(role: &str) -> String {
    format!("rpc.{role}")
}
const STARTED_KEY: &str = "started_ms";
const DRAINING_KEY: &str = "draining";

/// A live process as gossip sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its host id (the membership table's).
    pub host_id: String,
    /// Where it gossips.
    pub gossip_address: SocketAddr,
    /// When it started (unix millis).
    pub started_ms: i64,
    /// True once it is leaving: it no longer counts as a member of its roles.
    pub draining: bool,
    /// Each role it runs, with its rpc address.
    pub roles: BTreeMap<String, String>,
}

impl Peer {
    fn from_state(id: &ChitchatId, state: &NodeState) -> Peer {
        let roles = state
            .key_values()
            .filter_map(|(key, value)| {
                let role = key.strip_prefix("rpc.")?;
                Some((role.to_string(), value.to_string()))
            })
            .collect();
        Peer {
            host_id: id.node_id.to_string(),
            gossip_address: id.gossip_advertise_addr,
            started_ms: state
                .get(STARTED_KEY)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default(),
            draining: state.get(DRAINING_KEY) == Some("true"),
            roles,
        }
    }
}

/// What a process publishes and where it gossips.
pub struct GossipSettings {
    /// The UDP address it binds.
    pub listen: SocketAddr,
    /// The address the others gossip with it at.
    pub advertise: SocketAddr,
    /// The cluster's id: gossip from another cluster is ignored.
    pub cluster_id: String,
}

/// This process's gossip. Dropping it stops gossiping.
pub struct Gossip {
    handle: ChitchatHandle,
    live: watch::Receiver<BTreeMap<ChitchatId, NodeState>>,
    host_id: String,
    /// This process as it publishes itself (chitchat lists it only after its first round).
    itself: Peer,
    draining: std::sync::atomic::AtomicBool,
}

impl Gossip {
    /// Starts gossiping on `settings.listen` as `host_id`, publishing `roles` (role, rpc
    /// address) and `started_ms`, first with `seeds` (the others' gossip addresses). Fails when
    /// the address cannot be bound.
    pub async fn start(
        settings: &GossipSettings,
        host_id: &str,
        started_ms: i64,
        roles: &[(String, String)],
        seeds: Vec<String>,
    ) -> std::io::Result<Gossip> {
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(host_id, started_ms as u64, settings.advertise),
            cluster_id: settings.cluster_id.clone(),
            gossip_interval: GOSSIP_EVERY,
            listen_addr: settings.listen,
            seed_nodes: seeds,
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: PHI_THRESHOLD,
                sampling_window_size: 100,
                max_interval: Duration::from_secs(10),
                initial_interval: GOSSIP_EVERY,
                dead_node_grace_period: FORGET_DEAD_AFTER,
            },
            marked_for_deletion_grace_period: FORGET_DEAD_AFTER,
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V1,
        };
        let mut state: Vec<(String, String)> = roles
            .iter()
            .map(|(role, address)| (role_key(role), address.clone()))
            .collect();
        state.push((STARTED_KEY.into(), started_ms.to_string()));
        state.push((DRAINING_KEY.into(), "false".into()));
        let handle = spawn_chitchat(config, state, &UdpTransport)
            .await
            .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
        let live = handle.chitchat().lock().await.live_nodes_watcher();
        let itself = Peer {
            host_id: host_id.to_string(),
            gossip_address: settings.advertise,
            started_ms,
            draining: false,
            roles: roles.iter().cloned().collect(),
        };
        Ok(Gossip {
            handle,
            live,
            host_id: host_id.to_string(),
            itself,
            draining: false.into(),
        })
    }

    /// The live processes, this one first, as of the last gossip round.
    pub fn live(&self) -> Vec<Peer> {
        let mut itself = self.itself.clone();
        itself.draining = self.draining.load(std::sync::atomic::Ordering::Relaxed);
        let mut live = vec![itself];
        live.extend(
            self.live
                .borrow()
                .iter()
                .filter(|(id, _)| *id.node_id != *self.host_id)
                .map(|(id, state)| Peer::from_state(id, state)),
        );
        live
    }

    /// True when gossip sees a live process other than this one.
    pub fn sees_others(&self) -> bool {
        self.live
            .borrow()
            .keys()
            .any(|id| *id.node_id != *self.host_id)
    }

    /// Marks this process as draining: the others stop counting it as a member of its roles
    /// at their next gossip with it (or with one that has heard).
    pub async fn drain(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle
            .with_chitchat(|chitchat| chitchat.self_node_state().set(DRAINING_KEY, "true"))
            .await;
    }

    /// Gossips with `address` at once (a member the table lists that gossip has not met).
    pub fn greet(&self, address: SocketAddr) {
        let _ = self.handle.gossip(address);
    }
}

impl Drop for Gossip {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Shared by the clones of a membership.
pub type SharedGossip = Arc<std::sync::OnceLock<Gossip>>;
