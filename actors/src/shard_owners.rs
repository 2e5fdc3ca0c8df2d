//! Which history process owns each shard: rendezvous (highest random weight) hashing of the
//! shard id over the live history members' addresses. Every process that reads the same
//! members computes the same owners, with no coordination; a member that joins takes only the
//! shards it now scores highest on, and one that leaves gives up only its own, spread over the
//! rest. A process takes a shard by acquiring it in the store (a new `range_id`), which fences
//! the previous owner's writes whatever the members' views were.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use slog::{Logger, info};

use crate::LocalHistory;
use crate::membership::Membership;

/// A member's score for a shard: a 64-bit mix of the address and the shard id. The highest
/// score owns the shard.
fn score(address: &str, shard_id: i32) -> u64 {
    // FNV-1a over the address, then the shard id; splitmix64's finaliser spreads the result
    // so that nearby shard ids do not favour the same member.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in address.bytes().chain(shard_id.to_le_bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// The member of `members` (history rpc addresses) that owns `shard_id`; `None` when there is
/// none. Ties (equal scores) go to the smaller address, so every process agrees.
pub fn owner_of(shard_id: i32, members: &[String]) -> Option<&str> {
    members
        .iter()
        .max_by(|a, b| rank(shard_id, a, b))
        .map(String::as_str)
}

/// How `a` ranks against `b` as owner of `shard_id`: by score, then the smaller address.
fn rank(shard_id: i32, a: &str, b: &str) -> std::cmp::Ordering {
    score(a, shard_id)
        .cmp(&score(b, shard_id))
        .then_with(|| b.cmp(a))
}

/// The live history members as this process last read them, shared by its callers (which
/// route each shard's requests to its owner) and by its own shards (which take the shards it
/// owns). Cheap to clone.
#[derive(Clone, Default)]
pub struct ShardOwners {
    members: Arc<RwLock<Arc<Vec<String>>>>,
}

impl ShardOwners {
    /// Replaces the members (their order and duplicates do not matter); true when the set
    /// changed.
    pub fn set_members(&self, mut members: Vec<String>) -> bool {
        members.sort();
        members.dedup();
        members.retain(|m| !m.is_empty());
        let mut current = self.members.write().unwrap_or_else(|p| p.into_inner());
        if **current == members {
            return false;
        }
        *current = Arc::new(members);
        true
    }

    /// The members, sorted.
    pub fn members(&self) -> Arc<Vec<String>> {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The address of the member that owns `shard_id`, as last read.
    pub fn owner(&self, shard_id: i32) -> Option<String> {
        owner_of(shard_id, &self.members()).map(str::to_string)
    }

    /// Every member, in the order they would own `shard_id`: its owner, then the member that
    /// owns it if the owner is gone, and so on.
    pub fn candidates(&self, shard_id: i32) -> Vec<String> {
        let mut members = self.members().to_vec();
        members.sort_by(|a, b| rank(shard_id, b, a));
        members
    }
}

/// How often a process re-reads the members it last read (the table is read every
/// [`crate::membership::HEARTBEAT`]) and re-assigns its shards.
const ASSIGN_EVERY: Duration = Duration::from_millis(250);
/// How long the members must stay the same, after one joined, before a process takes the
/// shards the newcomer changed: the others see the same members by then and have released
/// theirs (one heartbeat), so a shard does not bounce between views that disagree.
pub const STABLE_FOR: Duration = crate::membership::HEARTBEAT;
/// How often a process tells every shard again whether it owns it, so that one fenced by a
/// member whose view disagreed is taken again once the views agree.
const REASSERT_EVERY: Duration = Duration::from_secs(5);

/// Keeps `owners` current from `membership`'s live `history` members, for as long as the
/// process runs; with `local` (this process is the history member at `address`), also takes
/// the shards it owns and releases the others. A member that left gives its shards up at once
/// to the ones that remain (they take them as soon as they see it gone); shards a newcomer
/// changes are taken once the members have been [`STABLE_FOR`].
///
/// The [`Departure`] returned makes the process leave in order (a planned stop).
pub fn keep_current(
    membership: Membership,
    owners: ShardOwners,
    local: Option<(LocalHistory, String)>,
    log: Logger,
) -> Departure {
    let departure = Departure {
        membership: membership.clone(),
        owners: owners.clone(),
        local: local.clone(),
        log: log.clone(),
    };
    tokio::spawn(async move {
        let mut assigner = local.map(|(local, address)| Assigner::new(local, address));
        let mut ticks = tokio::time::interval(ASSIGN_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut isolated = false;
        loop {
            ticks.tick().await;
            if membership.has_left() {
                return;
            }
            // Cut off from the others: change nothing (they may have taken this process's
            // shards, which fences them here), until gossip reaches them again.
            if membership.isolated() {
                if !isolated {
                    slog::warn!(
                        log,
                        "gossip reaches none of the live members the membership table lists; keeping the shards' owners as they were until it does"
                    );
                    isolated = true;
                }
                continue;
            }
            if isolated {
                info!(log, "gossip reaches the other members again");
                isolated = false;
                if let Some(assigner) = &mut assigner {
                    assigner.rejoined();
                }
            }
            let mut members: Vec<String> = membership
                .members("history")
                .into_iter()
                .map(|m| m.rpc_address)
                .collect();
            if let Some(assigner) = &assigner {
                // This process is a member whatever its last read said.
                members.push(assigner.address.clone());
            }
            let before = owners.members();
            if owners.set_members(members) {
                let after = owners.members();
                info!(log, "history members changed"; "members" => ?after, "before" => ?before);
                if let Some(assigner) = &mut assigner {
                    assigner.changed(&before, &after);
                }
            }
            if let Some(assigner) = &mut assigner {
                assigner.assign(&owners, membership.store()).await;
            }
        }
    });
    departure
}

/// How long a leaving member serves its shards while waiting for the others to take them.
const HANDOVER_WITHIN: Duration = Duration::from_secs(3);
/// How long a leaving member waits for its shards to finish their batches in flight.
const RELEASE_WITHIN: Duration = Duration::from_secs(5);

/// A process's planned leave: see [`Departure::leave`].
pub struct Departure {
    membership: Membership,
    owners: ShardOwners,
    local: Option<(LocalHistory, String)>,
    log: Logger,
}

impl Departure {
    /// Leaves the cluster in order: the process's membership rows are written as gone (the
    /// others take its shards as soon as they read them); each shard serves here until its
    /// row names its new owner (at most [`HANDOVER_WITHIN`]), then is released to it once its
    /// batch in flight is done (callers are told that owner; a shard nobody took goes to the
    /// member that owns it without this one). Waits for the shards to be released, at most
    /// [`RELEASE_WITHIN`].
    pub async fn leave(self) {
        if let Err(e) = self.membership.leave().await {
            slog::warn!(self.log, "could not mark this process gone in the membership table; the others notice when its heartbeats stop";
                "error" => %e);
        }
        let Some((local, address)) = self.local else {
            return;
        };
        let others: Vec<String> = self
            .owners
            .members()
            .iter()
            .filter(|m| **m != address)
            .cloned()
            .collect();
        // The others take the shards as soon as they read that this process is gone; it
        // serves each one until its row names the new owner (whose acquire fenced it here),
        // so a moving shard is never left without a member that serves it.
        let store = self.membership.store().clone();
        let deadline = Instant::now() + HANDOVER_WITHIN;
        while !others.is_empty() && Instant::now() < deadline {
            let held = local.serving_shards();
            if held.is_empty() {
                break;
            }
            for shard_id in held {
                if let Ok(Some(row)) = store.get_shard(shard_id).await
                    && row.owner != address
                    && !row.owner.is_empty()
                {
                    local.own(shard_id, false, row.owner);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // What nobody took by then goes to the member that owns it without this one.
        for shard_id in local.serving_shards() {
            let owner = owner_of(shard_id, &others).unwrap_or_default().to_string();
            local.own(shard_id, false, owner);
        }
        let deadline = Instant::now() + RELEASE_WITHIN;
        while !local.serving_shards().is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        info!(self.log, "left the cluster"; "shards_still_held" => local.serving_shards().len());
    }
}

/// A history member's view of which of its shards to hold.
struct Assigner {
    local: LocalHistory,
    address: String,
    /// Since when the members have not gained anyone.
    stable_since: Instant,
    /// What each shard was last told (owned here or not).
    told: Vec<Option<bool>>,
    /// Since when each shard told it is owned here has not been serving.
    not_serving_since: Vec<Option<Instant>>,
    /// The shards the view gave to another member while they served here: each keeps serving
    /// until its row names that member (whose acquire fenced it here) or [`HANDOVER_WITHIN`]
    /// passed, so that a shard is not left unserved while its new owner waits for the members
    /// to be stable before taking it.
    handing_over: Vec<Option<(String, Instant)>>,
    last_reassert: Instant,
}

impl Assigner {
    fn new(local: LocalHistory, address: String) -> Self {
        let told = vec![None; local.num_shards() as usize];
        let not_serving_since = vec![None; told.len()];
        let handing_over = vec![None; told.len()];
        Self {
            not_serving_since,
            handing_over,
            local,
            address,
            // The first view counts as new: a member starting beside others waits for them to
            // see it (unless it is alone).
            stable_since: Instant::now(),
            told,
            last_reassert: Instant::now(),
        }
    }

    /// Back in touch after being cut off: the others may have taken this process's shards
    /// meanwhile, so every shard is told again once the members have been stable.
    fn rejoined(&mut self) {
        self.stable_since = Instant::now();
        self.told.iter_mut().for_each(|t| *t = None);
    }

    /// The members went from `before` to `after`: a newcomer restarts the wait.
    fn changed(&mut self, before: &[String], after: &[String]) {
        if after.iter().any(|m| !before.contains(m)) {
            self.stable_since = Instant::now();
        }
    }

    async fn assign(&mut self, owners: &ShardOwners, store: &sundial_storage::DynStore) {
        let members = owners.members();
        let alone = members.len() == 1;
        let settled = alone || self.stable_since.elapsed() >= STABLE_FOR;
        let reassert = self.last_reassert.elapsed() >= REASSERT_EVERY;
        if reassert {
            self.last_reassert = Instant::now();
        }
        let mut serving = vec![false; self.told.len()];
        for shard_id in self.local.serving_shards() {
            serving[(shard_id - 1) as usize] = true;
        }
        for shard_id in 1..=self.local.num_shards() {
            let index = (shard_id - 1) as usize;
            let owner = owner_of(shard_id, &members).unwrap_or_default();
            let own = owner == self.address;
            if own && !settled {
                continue;
            }
            // A shard owned here that stopped serving without being told was fenced by another
            // member: one whose view disagreed, or that took it while this process was stopped
            // or starved (its own view may never have changed). It is taken again once the
            // views had a heartbeat to agree; one still acquiring ignores being told again.
            let mut retake = false;
            if own && self.told[index] == Some(true) && !serving[index] {
                let since = *self.not_serving_since[index].get_or_insert_with(Instant::now);
                retake = since.elapsed() >= STABLE_FOR;
            }
            if serving[index] || retake || !own {
                self.not_serving_since[index] = None;
            }
            if own {
                self.handing_over[index] = None;
            } else if self.told[index] == Some(true) && serving[index] {
                // Given away while serving here: hand it over rather than drop it.
                let (to, since) = self.handing_over[index]
                    .get_or_insert_with(|| (owner.to_string(), Instant::now()))
                    .clone();
                let taken = match store.get_shard(shard_id).await {
                    Ok(Some(row)) => row.owner == to,
                    _ => false,
                };
                if to == owner && !taken && since.elapsed() < HANDOVER_WITHIN {
                    continue;
                }
            }
            if !own {
                self.handing_over[index] = None;
            }
            let told = &mut self.told[index];
            if *told != Some(own) || reassert || retake {
                *told = Some(own);
                let owner = if own {
                    String::new()
                } else {
                    owner.to_string()
                };
                self.local.own(shard_id, own, owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("127.0.0.{i}:7234")).collect()
    }

    fn owners(shards: i32, members: &[String]) -> Vec<String> {
        (1..=shards)
            .map(|s| owner_of(s, members).unwrap().to_string())
            .collect()
    }

    #[test]
    fn shards_spread_over_the_members_and_every_order_agrees() {
        let three = members(3);
        let before = owners(512, &three);
        for m in &three {
            let n = before.iter().filter(|o| *o == m).count();
            // 512/3 = 171 on average; rendezvous hashing stays close to it.
            assert!((130..=215).contains(&n), "{m} owns {n} of 512 shards");
        }
        let mut reversed = three.clone();
        reversed.reverse();
        assert_eq!(owners(512, &reversed), before);
        assert_eq!(owner_of(1, &[]), None);
        // The candidates of a shard: its owner, then its owner among the others.
        let view = ShardOwners::default();
        view.set_members(three.clone());
        for shard_id in 1..=64 {
            let candidates = view.candidates(shard_id);
            assert_eq!(candidates[0], before[(shard_id - 1) as usize]);
            let others: Vec<String> = three
                .iter()
                .filter(|m| **m != candidates[0])
                .cloned()
                .collect();
            assert_eq!(owner_of(shard_id, &others), Some(candidates[1].as_str()));
        }
    }

    #[test]
    fn a_join_or_a_leave_moves_only_the_shards_it_must() {
        let three = members(3);
        let four = members(4);
        let (before, after) = (owners(512, &three), owners(512, &four));
        for (b, a) in before.iter().zip(&after) {
            // A shard moves only to the member that joined.
            assert!(a == b || a == &four[3], "a shard moved from {b} to {a}");
        }
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert!((90..=170).contains(&moved), "{moved} of 512 moved");
        // The member that leaves gives up only its own shards.
        let two = members(2);
        for (b, a) in before.iter().zip(owners(512, &two)) {
            assert!(b == &a || b == &three[2], "{b}'s shard moved to {a}");
        }
    }

    #[test]
    fn the_view_reports_changes_only() {
        let owners = ShardOwners::default();
        assert_eq!(owners.owner(1), None);
        assert!(owners.set_members(vec!["b:1".into(), "a:1".into(), "a:1".into()]));
        assert!(!owners.set_members(vec!["a:1".into(), "b:1".into()]));
        assert_eq!(
            *owners.members(),
            vec!["a:1".to_string(), "b:1".to_string()]
        );
        assert!(owners.owner(7).is_some());
    }
}
