//! `sundial cluster members`: the processes the store's `cluster_membership` table lists, with
//! their roles, where they gossip, whether they are alive, and how many history shards each
//! owns.

use std::fmt::Write;

use anyhow::Result;
use sundial_actors::membership::ALIVE_WINDOW;
use sundial_storage::DynStore;

/// The roles a process may run, in the order they are listed.
const ROLES: [&str; 4] = ["frontend", "history", "matching", "worker"];

/// The table of members of `store` at `now_ms`: role, address, gossip address, host id, state,
/// when it started and (history) the shards whose row names it as owner.
pub async fn members(store: &DynStore, now_ms: i64) -> Result<String> {
    let mut owners = Vec::new();
    // Shard rows exist from 1 up to the shard count once each was first acquired.
    for shard_id in 1.. {
        match store.get_shard(shard_id).await? {
            Some(row) => owners.push(row.owner),
            None => break,
        }
    }
    let alive_since = now_ms.saturating_sub(ALIVE_WINDOW.as_millis() as i64);
    let mut out = String::new();
    writeln!(
        out,
        "{:<9} {:<24} {:<24} {:<36} {:<10} {:>11} {:>6}",
        "ROLE", "ADDRESS", "GOSSIP", "HOST ID", "STATE", "STARTED", "SHARDS"
    )?;
    for role in ROLES {
        for member in store.list_members(role, 0).await? {
            let state = if member.last_heartbeat_ms >= alive_since {
                "alive".to_string()
            } else if member.last_heartbeat_ms == 0 {
                "left".to_string()
            } else {
                format!(
                    "silent {}s",
                    now_ms.saturating_sub(member.last_heartbeat_ms) / 1000
                )
            };
            let shards = if role == "history" && state == "alive" {
                owners
                    .iter()
                    .filter(|o| **o == member.rpc_address)
                    .count()
                    .to_string()
            } else {
                "-".to_string()
            };
            let started = format!(
                "{}s ago",
                now_ms.saturating_sub(member.session_start_ms) / 1000
            );
            // A single process (start-dev) gossips with nobody.
            let gossip = match member.gossip_address.as_str() {
                "" => "-",
                address => address,
            };
            writeln!(
                out,
                "{:<9} {:<24} {:<24} {:<36} {:<10} {:>11} {:>6}",
                role, member.rpc_address, gossip, member.host_id, state, started, shards
            )?;
        }
    }
    if !owners.is_empty() {
        let unowned = owners.iter().filter(|o| o.is_empty()).count();
        write!(out, "{} history shards", owners.len())?;
        if unowned > 0 {
            write!(out, ", {unowned} never owned")?;
        }
        writeln!(out)?;
    }
    Ok(out)
}
