//! Shard ownership: `acquire_shard`, `renew_shard`, the owner in the row and the `range_id`
//! fence of `commit`.

use sundial_storage::{Error, ShardBatch, TimerTaskRow, TransferTaskRow};

use super::{Harness, current_write, execution_write, history, key, start_batch};

pub async fn acquire_shard_creates_then_increments(h: &dyn Harness) {
    let store = h.open();
    let first = store.acquire_shard(1, "owner-a").await.unwrap();
    assert_eq!((first.shard_id, first.range_id), (1, 1));
    assert!(first.data.is_empty());
    assert_eq!(store.acquire_shard(1, "owner-a").await.unwrap().range_id, 2);
    assert_eq!(store.acquire_shard(1, "owner-a").await.unwrap().range_id, 3);
    assert_eq!(store.acquire_shard(7, "owner-a").await.unwrap().range_id, 1);
}

/// A stale owner (its `range_id` was superseded) is rejected and none of its batch lands.
pub async fn stale_owner_commit_is_rejected_and_writes_nothing(h: &dyn Harness) {
    let store = h.open();
    let old = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let new = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("wf", "run-1");
    let batch = ShardBatch {
        current_executions: vec![current_write(&k, None)],
        executions: vec![execution_write(&k, 1, None)],
        history: vec![history(&k, 1, 1, "started")],
        transfer_tasks: vec![TransferTaskRow {
            task_id: 1,
            data: b"t".to_vec(),
        }],
        timer_tasks: vec![TimerTaskRow {
            fire_time_ms: 10,
            task_id: 2,
            data: b"x".to_vec(),
        }],
        shard_data: Some(b"stale".to_vec()),
        ..ShardBatch::default()
    };
    let err = store.commit(1, old, batch.clone()).await.unwrap_err();
    assert_eq!(
        err,
        Error::ShardOwnershipLost {
            shard_id: 1,
            expected: old,
            actual: new
        }
    );
    assert_eq!(store.get_execution(1, &k).await.unwrap(), None);
    assert_eq!(
        store
            .get_current_execution(1, &k.namespace_id, "wf")
            .await
            .unwrap(),
        None
    );
    assert!(store.read_history(1, &k, 1, 100).await.unwrap().is_empty());
    assert!(
        store
            .list_transfer_tasks(1, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_timer_tasks(1, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_executions(1, 10).await.unwrap().is_empty());

    // The new owner's identical batch lands.
    store.commit(1, new, batch).await.unwrap();
    assert_eq!(
        store
            .get_execution(1, &k)
            .await
            .unwrap()
            .unwrap()
            .db_version,
        1
    );
    assert_eq!(store.list_transfer_tasks(1, 0, 10).await.unwrap().len(), 1);
    let info = store.acquire_shard(1, "owner-a").await.unwrap();
    assert_eq!(info.data, b"stale".to_vec());
}

/// The row names the owner that acquired it last.
pub async fn acquire_records_the_owner(h: &dyn Harness) {
    let store = h.open();
    assert_eq!(store.get_shard(4).await.unwrap(), None);
    let first = store.acquire_shard(4, "10.0.0.1:7234").await.unwrap();
    assert_eq!(first.owner, "10.0.0.1:7234");
    let second = store.acquire_shard(4, "10.0.0.2:7234").await.unwrap();
    assert_eq!(second.owner, "10.0.0.2:7234");
    let stored = store.get_shard(4).await.unwrap().unwrap();
    assert_eq!(
        (stored.range_id, stored.owner.as_str()),
        (first.range_id + 1, "10.0.0.2:7234")
    );
}

/// The owner renews its range; a stale owner's renewal is refused and changes nothing (it must
/// not take the shard back from the owner that superseded it).
pub async fn renew_moves_the_range_only_for_the_owner(h: &dyn Harness) {
    let store = h.open();
    let old = store.acquire_shard(5, "old:7234").await.unwrap().range_id;
    let renewed = store.renew_shard(5, old, "old:7234").await.unwrap();
    assert_eq!(renewed, old + 1);
    // The range before the renewal no longer commits.
    assert!(matches!(
        store.commit(5, old, ShardBatch::default()).await,
        Err(Error::ShardOwnershipLost { .. })
    ));
    store
        .commit(5, renewed, ShardBatch::default())
        .await
        .unwrap();

    let new = store.acquire_shard(5, "new:7234").await.unwrap().range_id;
    let err = store.renew_shard(5, renewed, "old:7234").await.unwrap_err();
    assert_eq!(
        err,
        Error::ShardOwnershipLost {
            shard_id: 5,
            expected: renewed,
            actual: new
        }
    );
    let stored = store.get_shard(5).await.unwrap().unwrap();
    assert_eq!((stored.range_id, stored.owner.as_str()), (new, "new:7234"));
    store.commit(5, new, ShardBatch::default()).await.unwrap();
    // A shard never acquired has nothing to renew.
    assert!(matches!(
        store.renew_shard(6, 1, "old:7234").await,
        Err(Error::ShardOwnershipLost { actual: 0, .. })
    ));
}

pub async fn commit_to_unacquired_shard_is_rejected(h: &dyn Harness) {
    let store = h.open();
    let err = store
        .commit(3, 1, start_batch(&key("wf", "r")))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::ShardOwnershipLost {
            shard_id: 3,
            expected: 1,
            actual: 0
        }
    );
    assert!(store.list_executions(3, 10).await.unwrap().is_empty());
}

pub async fn shard_data_is_returned_by_next_acquire(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(2, "owner-a").await.unwrap().range_id;
    let batch = ShardBatch {
        shard_data: Some(b"ack-levels".to_vec()),
        ..ShardBatch::default()
    };
    store.commit(2, range, batch).await.unwrap();
    // An empty batch is a valid fenced no-op.
    store.commit(2, range, ShardBatch::default()).await.unwrap();
    let next = store.acquire_shard(2, "owner-a").await.unwrap();
    assert_eq!(next.range_id, range + 1);
    assert_eq!(next.data, b"ack-levels".to_vec());
}

pub async fn shards_are_isolated(h: &dyn Harness) {
    let store = h.open();
    let r1 = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let r2 = store.acquire_shard(2, "owner-a").await.unwrap().range_id;
    let k = key("wf", "run");
    let mut batch = start_batch(&k);
    batch.transfer_tasks.push(TransferTaskRow {
        task_id: 5,
        data: vec![],
    });
    store.commit(1, r1, batch.clone()).await.unwrap();
    assert_eq!(store.get_execution(2, &k).await.unwrap(), None);
    assert!(
        store
            .list_transfer_tasks(2, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.read_history(2, &k, 0, 10).await.unwrap().is_empty());
    // The same keys may exist independently in another shard.
    store.commit(2, r2, batch).await.unwrap();
    assert_eq!(store.list_executions(1, 10).await.unwrap().len(), 1);
    assert_eq!(store.list_executions(2, 10).await.unwrap().len(), 1);
}
