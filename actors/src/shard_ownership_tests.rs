//! A shard moving between two history members of one store: taken when told, fenced in the
//! store when the other takes it, released when told, and read again from the store when taken
//! back. Real actors over the in-memory store.

use std::sync::Arc;

use sundial_storage::{DynStore, memory::MemoryStore};

use crate::ops::Request;
use crate::testkit::start;
use crate::{Clock, Error, LocalHistory, MatchingClient, Result, SystemClock, Telemetry};

/// A history member at `address` with one shard, over `store`.
fn member(store: &DynStore, address: &str) -> LocalHistory {
    let log = slog::Logger::root(slog::Discard, slog::o!());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let arbiters = crate::start_arbiters(1);
    let matching: MatchingClient = Arc::new(crate::Matching::new(
        store.clone(),
        clock.clone(),
        arbiters[0].clone(),
    ));
    LocalHistory::start(
        store,
        1,
        (&log, &clock, &Telemetry::default()),
        &matching,
        &arbiters,
        Arc::from(address),
        true,
    )
}

/// Starts `workflow_id` with `request_id` on shard 1 of `history`.
async fn start_on(history: &LocalHistory, workflow_id: &str, request_id: &str) -> Result<()> {
    let mut request = start(workflow_id);
    request.params.request_id = request_id.into();
    let mut replies = crate::HistoryService::submit(history, 1, Request::Start(request)).await?;
    replies.remove(0).await.map(|_| ())
}

fn owned_by(result: Result<()>, owner: &str) -> bool {
    matches!(result, Err(Error::ShardOwnershipLost { owner: o, .. }) if o == owner)
}

#[tokio::test]
async fn a_shard_moves_between_members_and_only_its_owner_writes() {
    let store: DynStore = Arc::new(MemoryStore::new());
    let (a, b) = (member(&store, "a:1"), member(&store, "b:1"));
    // Neither was told to own it: both refuse, naming no owner.
    assert!(owned_by(start_on(&a, "wf-1", "r1").await, ""));
    a.own(1, true, String::new());
    start_on(&a, "wf-1", "r1").await.unwrap();
    assert_eq!(a.serving_shards(), vec![1]);

    // b takes it (its view says so) before a heard: a's next commit is fenced by the store,
    // and its callers are told b owns the shard.
    b.own(1, true, String::new());
    start_on(&b, "wf-2", "r2").await.unwrap();
    assert!(owned_by(start_on(&a, "wf-3", "r3").await, "b:1"));
    assert_eq!(a.serving_shards(), Vec::<i32>::new());
    // Nothing a tried after it was fenced was written: b starts wf-3 as new.
    start_on(&b, "wf-3", "r3").await.unwrap();
    // b sees what a wrote before (wf-1 runs already).
    assert!(matches!(
        start_on(&b, "wf-1", "another request").await,
        Err(Error::WorkflowAlreadyStarted { .. })
    ));

    // b is told a owns it: it releases, naming a; a takes it back and reads the store again.
    b.own(1, false, "a:1".into());
    assert!(owned_by(start_on(&b, "wf-4", "r4").await, "a:1"));
    a.own(1, true, String::new());
    assert!(matches!(
        start_on(&a, "wf-2", "another request").await,
        Err(Error::WorkflowAlreadyStarted { .. })
    ));
    start_on(&a, "wf-4", "r4").await.unwrap();
    let shard = sundial_storage::ShardStore::get_shard(&*store, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(shard.owner, "a:1");
    assert_eq!(shard.range_id, 3, "acquired by a, b, then a");
}
