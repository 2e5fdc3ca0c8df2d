//! Durable backends only: what a commit wrote is there after the store is dropped and opened
//! again (a restarted process), and a second process fences the first.

use sundial_storage::{Error, QueueTask, ShardBatch, TimerTaskRow, TransferTaskRow};

use super::{Harness, NS, current_row, execution, key, namespace, queue, start_batch};

pub async fn commit_survives_reopen(h: &dyn Harness) {
    let k = key("wf", "run-1");
    let q = queue("orders", 1, 0);
    {
        let store = h.open();
        let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
        let mut batch = start_batch(&k);
        batch.timer_tasks.push(TimerTaskRow {
            fire_time_ms: 50,
            task_id: 2,
            data: b"timer".to_vec(),
        });
        batch.shard_data = Some(b"acks".to_vec());
        store.commit(1, range, batch).await.unwrap();
        store
            .create_namespace(namespace("id-1", "orders", 1))
            .await
            .unwrap();
        let lease = store.lease_task_queue(&q).await.unwrap();
        store
            .create_tasks(
                &q,
                lease,
                vec![QueueTask {
                    task_id: 1,
                    data: vec![1],
                }],
            )
            .await
            .unwrap();
    } // dropped: the "process" ends

    let store = h.open();
    assert_eq!(
        store.get_execution(1, &k).await.unwrap(),
        Some(execution(&k, 1))
    );
    assert_eq!(
        store.get_current_execution(1, NS, "wf").await.unwrap(),
        Some(current_row(&k))
    );
    assert_eq!(store.read_history(1, &k, 1, 10).await.unwrap().len(), 1);
    assert_eq!(store.list_timer_tasks(1, 50, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.get_namespace_by_name("orders").await.unwrap(),
        Some(namespace("id-1", "orders", 1))
    );
    assert_eq!(store.get_tasks(&q, 0, 10).await.unwrap().len(), 1);
    let info = store.acquire_shard(1, "owner-a").await.unwrap();
    assert_eq!((info.range_id, info.data), (2, b"acks".to_vec()));
    assert_eq!(store.lease_task_queue(&q).await.unwrap(), 2);
}

/// The transactional outbox: a transfer task committed with its state change is still there
/// after a crash that happened before its effect ran, and goes once a batch deletes it.
pub async fn crash_between_commit_and_effect_loses_nothing(h: &dyn Harness) {
    let k = key("wf", "run-1");
    {
        let store = h.open();
        let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
        let mut batch = start_batch(&k);
        batch.transfer_tasks.push(TransferTaskRow {
            task_id: 100,
            data: b"push workflow task".to_vec(),
        });
        store.commit(1, range, batch).await.unwrap();
        // Crash: the effect never ran and the task was never deleted.
    }

    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let pending = store.list_transfer_tasks(1, 0, 10).await.unwrap();
    assert_eq!(
        pending,
        vec![TransferTaskRow {
            task_id: 100,
            data: b"push workflow task".to_vec()
        }]
    );
    // The effect ran again (idempotently); now the task goes.
    let done = ShardBatch {
        delete_transfer_tasks: vec![100],
        ..ShardBatch::default()
    };
    store.commit(1, range, done).await.unwrap();
    assert!(
        store
            .list_transfer_tasks(1, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    drop(store);
    assert!(
        h.open()
            .list_transfer_tasks(1, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Two handles on the same data, as two processes: the later owner fences the earlier one.
pub async fn second_process_fences_the_first(h: &dyn Harness) {
    let first = h.open();
    let old = first.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let q = queue("orders", 1, 0);
    let old_lease = first.lease_task_queue(&q).await.unwrap();

    let second = h.open();
    let new = second.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let new_lease = second.lease_task_queue(&q).await.unwrap();

    let k = key("wf", "run-1");
    let err = first.commit(1, old, start_batch(&k)).await.unwrap_err();
    assert_eq!(
        err,
        Error::ShardOwnershipLost {
            shard_id: 1,
            expected: old,
            actual: new
        }
    );
    let err = first
        .create_tasks(
            &q,
            old_lease,
            vec![QueueTask {
                task_id: 1,
                data: vec![],
            }],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::TaskQueueLeaseLost {
            expected: old_lease,
            actual: new_lease
        }
    );
    assert_eq!(second.get_execution(1, &k).await.unwrap(), None);

    second.commit(1, new, start_batch(&k)).await.unwrap();
    // The first handle reads what the second committed.
    assert_eq!(
        first.get_execution(1, &k).await.unwrap(),
        Some(execution(&k, 1))
    );
}

/// The cluster's row outlives the process that wrote it: a restarted server compares its shard
/// count against the first one's.
pub async fn cluster_metadata_survives_reopen(h: &dyn Harness) {
    let first = super::namespaces::cluster("active", "id-1", 4);
    assert_eq!(
        h.open().cluster_metadata(first.clone()).await.unwrap(),
        first
    );
    let reopened = h.open();
    let proposed = super::namespaces::cluster("active", "id-2", 1);
    assert_eq!(reopened.cluster_metadata(proposed).await.unwrap(), first);
}
