//! `transfer_tasks` and `timer_tasks`: listing order, limits, `until_ms`, deletion.

use sundial_storage::{ShardBatch, TimerTaskRow, TransferTaskRow};

use super::Harness;

fn transfer(task_id: i64) -> TransferTaskRow {
    TransferTaskRow {
        task_id,
        data: format!("transfer-{task_id}").into_bytes(),
    }
}

fn timer(fire_time_ms: i64, task_id: i64) -> TimerTaskRow {
    TimerTaskRow {
        fire_time_ms,
        task_id,
        data: format!("timer-{task_id}").into_bytes(),
    }
}

pub async fn transfer_tasks_order_limit_and_delete(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let other = store.acquire_shard(2, "owner-a").await.unwrap().range_id;
    let batch = ShardBatch {
        transfer_tasks: vec![transfer(5), transfer(1), transfer(3), transfer(9)],
        ..ShardBatch::default()
    };
    store.commit(1, range, batch).await.unwrap();
    let elsewhere = ShardBatch {
        transfer_tasks: vec![transfer(2)],
        ..ShardBatch::default()
    };
    store.commit(2, other, elsewhere).await.unwrap();

    let list = |after, limit| {
        let store = store.clone();
        async move {
            store
                .list_transfer_tasks(1, after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|t| t.task_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(0, 10).await, vec![1, 3, 5, 9]);
    assert_eq!(list(0, 2).await, vec![1, 3]);
    assert_eq!(list(3, 10).await, vec![5, 9]);
    assert_eq!(list(9, 10).await, Vec::<i64>::new());
    assert_eq!(list(0, 0).await, Vec::<i64>::new());
    assert_eq!(
        store.list_transfer_tasks(1, 0, 1).await.unwrap(),
        vec![transfer(1)]
    );

    let delete = ShardBatch {
        delete_transfer_tasks: vec![3, 9, 42],
        ..ShardBatch::default()
    };
    store.commit(1, range, delete).await.unwrap();
    assert_eq!(list(0, 10).await, vec![1, 5]);
    assert_eq!(
        store.list_transfer_tasks(2, 0, 10).await.unwrap(),
        vec![transfer(2)]
    );
}

pub async fn timer_tasks_until_order_and_delete(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let batch = ShardBatch {
        timer_tasks: vec![timer(200, 1), timer(100, 7), timer(100, 2), timer(300, 4)],
        ..ShardBatch::default()
    };
    store.commit(1, range, batch).await.unwrap();

    let list = |until, limit| {
        let store = store.clone();
        async move {
            store
                .list_timer_tasks(1, until, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|t| (t.fire_time_ms, t.task_id))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(list(99, 10).await, vec![]);
    assert_eq!(list(100, 10).await, vec![(100, 2), (100, 7)]);
    assert_eq!(list(200, 10).await, vec![(100, 2), (100, 7), (200, 1)]);
    assert_eq!(list(i64::MAX, 2).await, vec![(100, 2), (100, 7)]);
    assert_eq!(list(i64::MAX, 10).await.len(), 4);
    assert_eq!(
        store.list_timer_tasks(1, 100, 1).await.unwrap(),
        vec![timer(100, 2)]
    );
    assert!(
        store
            .list_timer_tasks(2, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Deletion names (fire time, task id); a wrong fire time deletes nothing.
    let delete = ShardBatch {
        delete_timer_tasks: vec![(100, 2), (999, 4)],
        ..ShardBatch::default()
    };
    store.commit(1, range, delete).await.unwrap();
    assert_eq!(list(i64::MAX, 10).await, vec![(100, 7), (200, 1), (300, 4)]);
}
