//! Two owners of one shard racing: from the moment the new owner's `acquire_shard` returns, the
//! old owner's commits are refused, and a refused commit leaves nothing behind.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sundial_storage::{DynStore, Error, ShardBatch, TimerTaskRow, TransferTaskRow};

use super::{Harness, NS, current_write, execution_write, history, key, visibility};

/// Most commits a stale owner may make before it must have been refused.
const MAX_COMMITS: i64 = 10_000;

/// Commit `i` of an owner: a new run (current pointer, row, history, visibility record), a
/// transfer and a timer task, and on even commits new shard data (taking the shard row's write
/// lock).
fn batch(i: i64) -> ShardBatch {
    let k = key(&format!("wf-{i}"), "run");
    ShardBatch {
        current_executions: vec![current_write(&k, None)],
        executions: vec![execution_write(&k, 1, None)],
        history: vec![history(&k, 1, 1, "started")],
        transfer_tasks: vec![TransferTaskRow {
            task_id: i,
            data: b"t".to_vec(),
        }],
        timer_tasks: vec![TimerTaskRow {
            fire_time_ms: i,
            task_id: i,
            data: b"x".to_vec(),
        }],
        shard_data: (i % 2 == 0).then(|| format!("acks-{i}").into_bytes()),
        // Run ids are unique, as the shards make them.
        visibility: vec![visibility::record(&k.workflow_id, &format!("run-{i}"))],
        ..ShardBatch::default()
    }
}

/// Which parts of commit `i` are visible: (run row, current pointer, history, transfer task,
/// timer task, visibility record).
async fn visible(store: &DynStore, i: i64) -> [bool; 6] {
    let k = key(&format!("wf-{i}"), "run");
    let listed = visibility::filter(&format!("WorkflowId = '{}'", k.workflow_id));
    let transfers = store.list_transfer_tasks(1, i - 1, 1).await.unwrap();
    let timers = store
        .list_timer_tasks(1, i, MAX_COMMITS as usize)
        .await
        .unwrap();
    [
        store.get_execution(1, &k).await.unwrap().is_some(),
        store
            .get_current_execution(1, NS, &k.workflow_id)
            .await
            .unwrap()
            .is_some(),
        !store.read_history(1, &k, 1, 10).await.unwrap().is_empty(),
        transfers.first().is_some_and(|t| t.task_id == i),
        timers.iter().any(|t| (t.fire_time_ms, t.task_id) == (i, i)),
        !store
            .list_visibility(NS, listed.as_ref(), None, 1)
            .await
            .unwrap()
            .is_empty(),
    ]
}

/// The transfer tasks of round `round`'s commits.
async fn round_tasks(store: &DynStore, round: i64) -> BTreeSet<i64> {
    let first = (round + 1) * MAX_COMMITS * 10;
    store
        .list_transfer_tasks(1, first, MAX_COMMITS as usize)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .filter(|id| *id <= first + MAX_COMMITS)
        .collect()
}

/// Each round, the current owner commits in a loop while a new owner takes the shard: every
/// commit acknowledged to the old owner is stored whole, every commit it started after the
/// acquire returned is refused with the new `range_id`, and the refused commit (run, pointer,
/// history, tasks, shard data) is nowhere to be seen.
pub async fn racing_owners_stale_commit_is_refused_and_leaves_nothing(h: &dyn Harness) {
    const ROUNDS: i64 = 8;
    let store = h.open();
    let mut owner = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let mut last_data = Vec::new();
    for round in 0..ROUNDS {
        let fenced = Arc::new(AtomicBool::new(false));
        let (landed_tx, mut landed_rx) = tokio::sync::mpsc::unbounded_channel();
        let writer = tokio::spawn({
            let (store, fenced) = (store.clone(), fenced.clone());
            async move {
                let mut landed = Vec::new();
                for n in 1..=MAX_COMMITS {
                    let i = (round + 1) * MAX_COMMITS * 10 + n; // see `round_tasks`
                    let started_after_fence = fenced.load(Ordering::SeqCst);
                    match store.commit(1, owner, batch(i)).await {
                        Ok(()) => {
                            assert!(
                                !started_after_fence,
                                "commit {i} started after the new owner's acquire returned, \
                                 yet it landed"
                            );
                            landed.push(i);
                            let _ = landed_tx.send(i);
                        }
                        Err(Error::ShardOwnershipLost {
                            shard_id: 1,
                            expected,
                            actual,
                        }) if expected == owner => return (landed, i, actual),
                        Err(e) => panic!("commit {i}: unexpected {e:?}"),
                    }
                }
                panic!("the stale owner was never refused");
            }
        });
        // Let the owner land a few commits, then take the shard while it keeps writing.
        for _ in 0..3 {
            landed_rx.recv().await.expect("the owner commits");
        }
        let taken = store.acquire_shard(1, "owner-a").await.unwrap();
        fenced.store(true, Ordering::SeqCst);
        let at_acquire = round_tasks(&store, round).await;
        let (landed, refused, actual) = writer.await.unwrap();
        assert_eq!(actual, taken.range_id, "refused with the new range_id");
        assert!(taken.range_id > owner);

        for &i in &landed {
            assert_eq!(
                visible(&store, i).await,
                [true; 6],
                "acknowledged commit {i}"
            );
        }
        assert_eq!(
            visible(&store, refused).await,
            [false; 6],
            "refused commit {refused}"
        );
        // The new owner sees the shard data of the last commit that landed before it.
        if let Some(i) = landed.iter().rev().find(|i| *i % 2 == 0) {
            last_data = format!("acks-{i}").into_bytes();
        }
        assert_eq!(taken.data, last_data);
        // Nothing of the old owner landed after the acquire returned.
        let listed = round_tasks(&store, round).await;
        assert_eq!(
            listed, at_acquire,
            "round {round}: written after the acquire"
        );
        assert_eq!(listed, landed.iter().copied().collect(), "round {round}");

        // The new owner's commits land.
        owner = taken.range_id;
        store.commit(1, owner, ShardBatch::default()).await.unwrap();
    }
}
