//! What the store says of a cluster's history members, for tests that move shards.

use anyhow::{Context, Result};
use sundial_actors::shard_owners::owner_of;
use sundial_storage::DynStore;

/// The shards (of `1..=shards`) whose row does not name the owner rendezvous hashing gives over
/// `members`, with the owner the row names.
pub async fn misowned(
    store: &DynStore,
    shards: i32,
    members: &[String],
) -> Result<Vec<(i32, Option<String>)>> {
    let mut wrong = Vec::new();
    for shard_id in 1..=shards {
        let owner = store.get_shard(shard_id).await?.map(|r| r.owner);
        let want = owner_of(shard_id, members).context("no members")?;
        if owner.as_deref() != Some(want) {
            wrong.push((shard_id, owner));
        }
    }
    Ok(wrong)
}
