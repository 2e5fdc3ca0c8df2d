//! `sundial server start --services ROLES`: the roles a process runs, each on its own
//! `services.<role>.rpc` port, and how it finds the others: gossip on one `membershipPort`,
//! seeded from the store's `cluster_membership` table.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use slog::Logger;
use sundial_actors::gossip::GossipSettings;
use sundial_actors::membership::Membership;
use sundial_actors::shard_owners::{self, Departure, ShardOwners};
use sundial_actors::{Clock, HistoryService, MatchingClient, Placement};
use sundial_config::{Config, ServiceRole};
use sundial_storage::DynStore;
use sundial_transport::internal::{Peer, RemoteHistory, RemoteMatching};
use tokio::net::TcpListener;

/// The roles `--services` may name. The internal frontend is Temporal's frontend for system
/// workers; Sundial's worker role reaches history and matching directly.
const ROLES: [ServiceRole; 4] = [
    ServiceRole::Frontend,
    ServiceRole::History,
    ServiceRole::Matching,
    ServiceRole::Worker,
];

/// One role this process runs: where it listens and the address the others reach it at.
pub struct Role {
    /// The role.
    pub role: ServiceRole,
    /// `ip:port` it binds.
    pub bind: String,
    /// `host:port` written to the membership table.
    pub advertised: String,
    /// `ip:port` its gossip would bind (`services.<role>.rpc.membershipPort`, UDP).
    pub gossip_bind: String,
    /// `host:port` the others would gossip with it at.
    pub gossip_advertised: String,
}

/// The roles `services` names, checked against the config: each must be a role Sundial runs
/// and have its `services.<role>` section. Binding every interface needs
/// `global.membership.broadcastAddress`, the address the other processes use.
pub fn plan(config: &Config, services: &[String], file: &str) -> Result<Vec<Role>> {
    let mut roles = Vec::new();
    for name in services {
        let role: ServiceRole = name
            .parse()
            .map_err(|e| anyhow::anyhow!("--services: {e}"))?;
        if !ROLES.contains(&role) {
            bail!(
                "--services: {role} is not a role Sundial runs (its worker role reaches history \
                 and matching directly); name frontend, history, matching or worker"
            );
        }
        let service = config.service(role.as_str()).with_context(|| {
            format!("--services: {role:?} is not configured in {file} (add services.{role})")
        })?;
        let ip = service.bind_ip();
        let port = service.rpc.grpc_port;
        let gossip_port = service.rpc.membership_port;
        let advertised_ip = match &config.global.membership.broadcast_address {
            Some(address) => address.clone(),
            None if ip == "0.0.0.0" || ip == "::" => bail!(
                "services.{role}.rpc binds every interface, so the other processes cannot be \
                 told where it answers: set global.membership.broadcastAddress to the address \
                 they reach this host at, or bind one address (bindOnIP)"
            ),
            None => ip.clone(),
        };
        if !roles.iter().any(|r: &Role| r.role == role) {
            roles.push(Role {
                role,
                bind: format!("{ip}:{port}"),
                advertised: format!("{advertised_ip}:{port}"),
                gossip_bind: format!("{ip}:{gossip_port}"),
                gossip_advertised: format!("{advertised_ip}:{gossip_port}"),
            });
        }
    }
    Ok(roles)
}

/// Binds the listener of each role, before any shard is taken (as a single process binds its
/// frontend port first).
pub async fn bind(roles: &[Role]) -> Result<sundial_transport::RoleListeners> {
    let mut listeners = sundial_transport::RoleListeners::default();
    for role in roles {
        let listener = TcpListener::bind(&role.bind).await.with_context(|| {
            format!(
                "binding {} (services.{}.rpc.grpcPort)",
                role.bind, role.role
            )
        })?;
        let slot = match role.role {
            ServiceRole::Frontend => &mut listeners.frontend,
            ServiceRole::History => &mut listeners.history,
            ServiceRole::Matching => &mut listeners.matching,
            _ => &mut listeners.worker,
        };
        *slot = Some(listener);
    }
    Ok(listeners)
}

/// What a process knows of the cluster once it joined: its membership and the history
/// members that own the shards.
pub struct Joined {
    membership: Membership,
    owners: ShardOwners,
    /// This process's history address, when it is a history member.
    history_address: Option<String>,
}

impl Joined {
    /// Keeps the shards' owners current (and, on a history member, takes and releases its
    /// shards) for as long as the process runs; the departure makes it leave in order.
    pub fn keep_current(self, node: &sundial_actors::Node, log: &Logger) -> Departure {
        let local = match (self.history_address, &node.local_history) {
            (Some(address), Some(local)) => Some((local.clone(), address)),
            _ => None,
        };
        shard_owners::keep_current(self.membership, self.owners, local, log.clone())
    }
}

/// The role whose `membershipPort` the process gossips on: the first it runs in the order of
/// [`ROLES`] (a process gossips once, whatever it runs).
pub fn gossip_role(roles: &[Role]) -> Option<&Role> {
    ROLES
        .iter()
        .find_map(|role| roles.iter().find(|r| r.role == *role))
}

/// The gossip settings of a process running `roles`, in the cluster `cluster_id`.
fn gossip_settings(roles: &[Role], cluster_id: &str) -> Result<GossipSettings> {
    let role = gossip_role(roles).context("--services names no role")?;
    let path = format!("services.{}.rpc.membershipPort", role.role);
    let listen = role
        .gossip_bind
        .parse()
        .with_context(|| format!("{path}: cannot listen on {}", role.gossip_bind))?;
    let advertise = role.gossip_advertised.parse().with_context(|| {
        format!(
            "{path}: the others cannot gossip with {} (global.membership.broadcastAddress \
                 must be an IP address)",
            role.gossip_advertised
        )
    })?;
    Ok(GossipSettings {
        listen,
        advertise,
        cluster_id: cluster_id.to_string(),
    })
}

/// Joins the membership table with this process's roles, and places its services: the address
/// its history role is reached at (recorded as the owner of the shards it takes), and the
/// services of the roles it does not run, reached where the table says they answer. History
/// shards are spread over the live history members (see `sundial_actors::shard_owners`); a
/// process of another role sends each shard's requests to its owner.
pub async fn join(
    store: &DynStore,
    clock: Arc<dyn Clock>,
    roles: &[Role],
    cluster_id: &str,
    log: &Logger,
) -> Result<(Placement, Joined)> {
    let runs = |role: ServiceRole| roles.iter().any(|r| r.role == role);
    let own = roles
        .iter()
        .map(|r| (r.role.as_str().to_string(), r.advertised.clone()))
        .collect();
    // Every process watches the history members, its own role included: the shards are
    // spread over them.
    let watch: Vec<String> = [ServiceRole::History, ServiceRole::Matching]
        .into_iter()
        .filter(|role| *role == ServiceRole::History || !runs(*role))
        .map(|role| role.as_str().to_string())
        .collect();
    let gossip = gossip_settings(roles, cluster_id)?;
    let gossip_path = gossip_role(roles)
        .map(|r| format!("services.{}.rpc.membershipPort", r.role))
        .unwrap_or_default();
    let membership = Membership::join_gossiping(store.clone(), clock, own, watch, gossip, log)
        .await
        .with_context(|| {
            format!("joining the cluster (the cluster_membership table, gossip on {gossip_path})")
        })?;
    membership.keep_fresh(log.clone());
    let resolver = |role: &'static str| {
        let membership = membership.clone();
        Arc::new(move || {
            let membership = membership.clone();
            Box::pin(async move { membership.resolve(role).await }) as sundial_actors::BoxFuture<_>
        }) as sundial_transport::internal::client::Resolve
    };
    let owners = ShardOwners::default();
    let route = {
        let (owners, membership) = (owners.clone(), membership.clone());
        Arc::new(move |shard_id| {
            let (owners, membership) = (owners.clone(), membership.clone());
            Box::pin(async move {
                let candidates = owners.candidates(shard_id);
                if candidates.is_empty() {
                    // None known yet: the one the table lists now, until the members are read.
                    return membership.resolve("history").await.into_iter().collect();
                }
                candidates
            }) as sundial_actors::BoxFuture<_>
        }) as sundial_transport::internal::client::Route
    };
    let members = {
        let (owners, membership) = (owners.clone(), membership.clone());
        Arc::new(move || {
            let (owners, membership) = (owners.clone(), membership.clone());
            Box::pin(async move {
                let members = owners.members();
                if members.is_empty() {
                    return membership.resolve("history").await.into_iter().collect();
                }
                members.to_vec()
            }) as sundial_actors::BoxFuture<_>
        }) as sundial_transport::internal::client::Members
    };
    let history = Some(Arc::new(RemoteHistory::routed(route, members)) as Arc<dyn HistoryService>);
    let matching = (!runs(ServiceRole::Matching)).then(|| {
        Arc::new(RemoteMatching::new(Peer::new(
            "matching",
            resolver("matching"),
        ))) as MatchingClient
    });
    let address = roles
        .iter()
        .find(|r| r.role == ServiceRole::History)
        .map(|r| r.advertised.clone())
        .unwrap_or_default();
    let history_address = runs(ServiceRole::History).then(|| address.clone());
    let joined = Joined {
        membership,
        owners: owners.clone(),
        history_address,
    };
    let placement = Placement {
        shard_owners: runs(ServiceRole::History).then_some(owners),
        address,
        history,
        matching,
        // A process that serves history or matching to others serves their internal API on
        // its actor thread (see `sundial_transport::serve_roles`): with every shard and
        // partition on that one thread, a call and its reply never wait for another thread to
        // be woken. A process with a frontend keeps one actor thread per core, as its public
        // calls come in on the RPC threads anyway.
        actor_threads: (!runs(ServiceRole::Frontend)).then_some(1),
    };
    Ok((placement, joined))
}
