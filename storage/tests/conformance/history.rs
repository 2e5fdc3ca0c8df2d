//! `history`: append, ranged reads, rewrites by transaction id.

use sundial_storage::{HistoryBatch, ShardBatch};

use super::{Harness, history, key};

fn ids(batches: &[HistoryBatch]) -> Vec<i64> {
    batches.iter().map(|b| b.first_event_id).collect()
}

pub async fn history_append_and_ranged_read(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("wf", "run-1");
    let other = key("wf", "run-2");
    // Appended out of order, across two commits.
    let first = ShardBatch {
        history: vec![history(&k, 6, 2, "e6"), history(&k, 1, 1, "e1")],
        ..ShardBatch::default()
    };
    let second = ShardBatch {
        history: vec![
            history(&k, 10, 3, "e10"),
            history(&k, 3, 3, "e3"),
            history(&other, 1, 3, "o1"),
        ],
        ..ShardBatch::default()
    };
    store.commit(1, range, first).await.unwrap();
    store.commit(1, range, second).await.unwrap();

    let all = store.read_history(1, &k, 1, 100).await.unwrap();
    assert_eq!(ids(&all), vec![1, 3, 6, 10]);
    assert_eq!(all[1].events, b"e3".to_vec());
    assert_eq!(all[1].txn_id, 3);
    // `[min, max)` on first event ids.
    assert_eq!(
        ids(&store.read_history(1, &k, 3, 10).await.unwrap()),
        vec![3, 6]
    );
    assert_eq!(
        ids(&store.read_history(1, &k, 2, 6).await.unwrap()),
        vec![3]
    );
    assert!(store.read_history(1, &k, 4, 6).await.unwrap().is_empty());
    assert!(store.read_history(1, &k, 6, 6).await.unwrap().is_empty());
    assert!(store.read_history(1, &k, 10, 1).await.unwrap().is_empty());
    assert_eq!(
        ids(&store.read_history(1, &other, 0, i64::MAX).await.unwrap()),
        vec![1]
    );
    assert!(
        store
            .read_history(1, &key("wf", "none"), 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn history_rewrite_with_higher_txn_replaces(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("wf", "run-1");
    let append = |txn, events| ShardBatch {
        history: vec![history(&k, 5, txn, events)],
        ..ShardBatch::default()
    };
    let (s, kr) = (&store, &k);
    let read = move || async move { s.read_history(1, kr, 0, 100).await.unwrap() };

    store.commit(1, range, append(10, "a")).await.unwrap();
    store.commit(1, range, append(11, "b")).await.unwrap();
    let stored = read().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].txn_id, stored[0].events.as_slice()),
        (11, &b"b"[..])
    );

    // Equal txn id replaces too.
    store.commit(1, range, append(11, "c")).await.unwrap();
    assert_eq!(read().await[0].events, b"c".to_vec());

    // A lower txn id does not.
    store.commit(1, range, append(3, "d")).await.unwrap();
    let stored = read().await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        (stored[0].txn_id, stored[0].events.as_slice()),
        (11, &b"c"[..])
    );
}

/// Reads that start inside a batch get the batch holding the first event asked for, and
/// nothing before it.
pub async fn history_read_covering_starts_at_the_batch_holding_the_event(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("wf", "run-1");
    let batch = ShardBatch {
        history: vec![
            history(&k, 1, 1, "e1-3"),
            history(&k, 4, 1, "e4-6"),
            history(&k, 7, 1, "e7-9"),
            history(&key("wf", "run-0"), 1, 1, "other"),
        ],
        ..ShardBatch::default()
    };
    store.commit(1, range, batch).await.unwrap();
    let covering = |from, to| {
        let (store, k) = (store.clone(), k.clone());
        async move { ids(&store.read_history_covering(1, &k, from, to).await.unwrap()) }
    };
    assert_eq!(covering(5, 8).await, vec![4, 7]);
    assert_eq!(covering(4, 5).await, vec![4]);
    assert_eq!(covering(1, 100).await, vec![1, 4, 7]);
    assert_eq!(covering(9, 10).await, vec![7]);
    assert_eq!(covering(6, 6).await, Vec::<i64>::new());
    // Before the first batch (ids start at 1): from the first batch on.
    assert_eq!(covering(0, 2).await, vec![1]);
    assert!(
        store
            .read_history_covering(1, &key("wf", "none"), 1, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
