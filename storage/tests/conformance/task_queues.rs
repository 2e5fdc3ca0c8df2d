//! `task_queues` and `tasks`: partition leases and the fenced backlog.

use sundial_storage::{Error, QueueTask};

use super::{Harness, queue};

fn task(task_id: i64) -> QueueTask {
    QueueTask {
        task_id,
        data: format!("task-{task_id}").into_bytes(),
    }
}

pub async fn task_queue_lease_increments(h: &dyn Harness) {
    let store = h.open();
    let q = queue("orders", 1, 0);
    assert_eq!(store.lease_task_queue(&q).await.unwrap(), 1);
    assert_eq!(store.lease_task_queue(&q).await.unwrap(), 2);
    assert_eq!(store.lease_task_queue(&q).await.unwrap(), 3);
    // Every part of the key names a different partition.
    assert_eq!(
        store
            .lease_task_queue(&queue("orders", 2, 0))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .lease_task_queue(&queue("orders", 1, 1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.lease_task_queue(&queue("other", 1, 0)).await.unwrap(),
        1
    );
}

pub async fn task_queue_writes_are_fenced_by_lease(h: &dyn Harness) {
    let store = h.open();
    let q = queue("orders", 1, 0);

    let err = store.create_tasks(&q, 1, vec![task(1)]).await.unwrap_err();
    assert_eq!(
        err,
        Error::TaskQueueLeaseLost {
            expected: 1,
            actual: 0
        }
    );

    let old = store.lease_task_queue(&q).await.unwrap();
    store
        .create_tasks(&q, old, vec![task(1), task(2)])
        .await
        .unwrap();
    let new = store.lease_task_queue(&q).await.unwrap();

    let err = store
        .create_tasks(&q, old, vec![task(3)])
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::TaskQueueLeaseLost {
            expected: old,
            actual: new
        }
    );
    let err = store.delete_tasks(&q, old, &[1, 2]).await.unwrap_err();
    assert_eq!(
        err,
        Error::TaskQueueLeaseLost {
            expected: old,
            actual: new
        }
    );
    assert_eq!(
        store.get_tasks(&q, 0, 10).await.unwrap(),
        vec![task(1), task(2)]
    );

    store.create_tasks(&q, new, vec![task(3)]).await.unwrap();
    store.delete_tasks(&q, new, &[1, 7]).await.unwrap();
    assert_eq!(
        store.get_tasks(&q, 0, 10).await.unwrap(),
        vec![task(2), task(3)]
    );
}

pub async fn get_tasks_order_limit_after(h: &dyn Harness) {
    let store = h.open();
    let q = queue("orders", 1, 0);
    let sibling = queue("orders", 2, 0);
    let range = store.lease_task_queue(&q).await.unwrap();
    let sibling_range = store.lease_task_queue(&sibling).await.unwrap();
    store
        .create_tasks(&q, range, vec![task(4), task(1), task(3), task(2)])
        .await
        .unwrap();
    store
        .create_tasks(&sibling, sibling_range, vec![task(1)])
        .await
        .unwrap();

    let ids = |tasks: Vec<QueueTask>| tasks.into_iter().map(|t| t.task_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.get_tasks(&q, 0, 10).await.unwrap()),
        vec![1, 2, 3, 4]
    );
    assert_eq!(ids(store.get_tasks(&q, 0, 2).await.unwrap()), vec![1, 2]);
    assert_eq!(ids(store.get_tasks(&q, 2, 10).await.unwrap()), vec![3, 4]);
    assert_eq!(
        ids(store.get_tasks(&q, 4, 10).await.unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(
        ids(store.get_tasks(&q, 0, 0).await.unwrap()),
        Vec::<i64>::new()
    );
    assert_eq!(store.get_tasks(&q, 2, 1).await.unwrap(), vec![task(3)]);
    assert_eq!(
        ids(store.get_tasks(&sibling, 0, 10).await.unwrap()),
        vec![1]
    );
    assert!(
        store
            .get_tasks(&queue("none", 1, 0), 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
