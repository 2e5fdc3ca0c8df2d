//! `executions` and `current_executions`: the row conditions of a commit.

use sundial_storage::{Error, ShardBatch, TimerTaskRow, TransferTaskRow};

use super::{
    Harness, NS, current_row, current_write, execution, execution_write, history, key, start_batch,
};

pub async fn execution_insert_then_update(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("wf", "run-1");
    store.commit(1, range, start_batch(&k)).await.unwrap();
    assert_eq!(
        store.get_execution(1, &k).await.unwrap(),
        Some(execution(&k, 1))
    );

    let update = ShardBatch {
        executions: vec![execution_write(&k, 2, Some(1))],
        ..ShardBatch::default()
    };
    store.commit(1, range, update).await.unwrap();
    assert_eq!(
        store.get_execution(1, &k).await.unwrap(),
        Some(execution(&k, 2))
    );
    assert_eq!(
        store.get_execution(1, &key("wf", "other")).await.unwrap(),
        None
    );
}

pub async fn insert_of_existing_execution_fails(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("wf", "run-1");
    store.commit(1, range, start_batch(&k)).await.unwrap();
    let again = ShardBatch {
        executions: vec![execution_write(&k, 5, None)],
        ..ShardBatch::default()
    };
    let err = store.commit(1, range, again).await.unwrap_err();
    assert!(matches!(err, Error::ConditionFailed(_)), "{err:?}");
    assert_eq!(
        store.get_execution(1, &k).await.unwrap(),
        Some(execution(&k, 1))
    );
}

pub async fn update_of_missing_execution_fails(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("wf", "ghost");
    let batch = ShardBatch {
        executions: vec![execution_write(&k, 2, Some(1))],
        ..ShardBatch::default()
    };
    let err = store.commit(1, range, batch).await.unwrap_err();
    assert!(matches!(err, Error::ConditionFailed(_)), "{err:?}");
    assert_eq!(store.get_execution(1, &k).await.unwrap(), None);
}

/// A wrong version fails the commit, and nothing of the batch (history, tasks, current pointer,
/// other executions, shard data) becomes visible.
pub async fn wrong_version_rejects_whole_batch(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("wf", "run-1");
    store.commit(1, range, start_batch(&k)).await.unwrap();

    let other = key("wf-2", "run-2");
    let batch = ShardBatch {
        // Valid on their own: a new run and its current pointer ...
        current_executions: vec![current_write(&other, None)],
        executions: vec![
            execution_write(&other, 1, None),
            // ... but this one expects version 7 while 1 is stored.
            execution_write(&k, 8, Some(7)),
        ],
        history: vec![history(&k, 2, 2, "more"), history(&other, 1, 2, "started")],
        transfer_tasks: vec![TransferTaskRow {
            task_id: 10,
            data: vec![],
        }],
        timer_tasks: vec![TimerTaskRow {
            fire_time_ms: 1,
            task_id: 11,
            data: vec![],
        }],
        shard_data: Some(b"must-not-land".to_vec()),
        ..ShardBatch::default()
    };
    let err = store.commit(1, range, batch).await.unwrap_err();
    assert!(matches!(err, Error::ConditionFailed(_)), "{err:?}");

    assert_eq!(
        store.get_execution(1, &k).await.unwrap(),
        Some(execution(&k, 1))
    );
    assert_eq!(store.get_execution(1, &other).await.unwrap(), None);
    assert_eq!(
        store.get_current_execution(1, NS, "wf-2").await.unwrap(),
        None
    );
    let hist = store.read_history(1, &k, 1, 100).await.unwrap();
    assert_eq!(hist.len(), 1, "only the start batch");
    assert!(
        store
            .read_history(1, &other, 1, 100)
            .await
            .unwrap()
            .is_empty()
    );
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
    assert!(
        store
            .acquire_shard(1, "owner-a")
            .await
            .unwrap()
            .data
            .is_empty()
    );
}

pub async fn current_execution_compare_and_set(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let run1 = key("wf", "run-1");
    let run2 = key("wf", "run-2");
    let set = |k, expected| ShardBatch {
        current_executions: vec![current_write(k, expected)],
        ..ShardBatch::default()
    };

    store.commit(1, range, set(&run1, None)).await.unwrap();
    assert_eq!(
        store.get_current_execution(1, NS, "wf").await.unwrap(),
        Some(current_row(&run1))
    );

    // `None`: no current run may exist.
    let err = store.commit(1, range, set(&run2, None)).await.unwrap_err();
    assert!(matches!(err, Error::ConditionFailed(_)), "{err:?}");
    // `Some(run)`: it must be the stored one.
    let err = store
        .commit(1, range, set(&run2, Some("run-9")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConditionFailed(_)), "{err:?}");
    assert_eq!(
        store.get_current_execution(1, NS, "wf").await.unwrap(),
        Some(current_row(&run1))
    );

    store
        .commit(1, range, set(&run2, Some("run-1")))
        .await
        .unwrap();
    assert_eq!(
        store.get_current_execution(1, NS, "wf").await.unwrap(),
        Some(current_row(&run2))
    );
    // `Some` on a workflow id without a current run fails too.
    let err = store
        .commit(1, range, set(&key("wf-new", "r"), Some("r")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConditionFailed(_)), "{err:?}");
    assert_eq!(
        store
            .get_current_execution(1, "other-ns", "wf")
            .await
            .unwrap(),
        None
    );
}

pub async fn list_executions_is_ordered_and_limited(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let other_range = store.acquire_shard(2, "owner-a").await.unwrap().range_id;
    let keys = [key("c", "1"), key("a", "2"), key("b", "1"), key("a", "1")];
    let batch = ShardBatch {
        executions: keys.iter().map(|k| execution_write(k, 1, None)).collect(),
        ..ShardBatch::default()
    };
    store.commit(1, range, batch).await.unwrap();
    let elsewhere = ShardBatch {
        executions: vec![execution_write(&key("0", "0"), 1, None)],
        ..ShardBatch::default()
    };
    store.commit(2, other_range, elsewhere).await.unwrap();

    let listed: Vec<_> = store
        .list_executions(1, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key.workflow_id, r.key.run_id))
        .collect();
    let expected: Vec<_> = [("a", "1"), ("a", "2"), ("b", "1"), ("c", "1")]
        .iter()
        .map(|(w, r)| (w.to_string(), r.to_string()))
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(store.list_executions(1, 2).await.unwrap().len(), 2);
    assert!(store.list_executions(1, 0).await.unwrap().is_empty());
}

/// Deleting a run removes its row, its history and the current pointer that names it, and
/// leaves other runs alone.
pub async fn delete_removes_the_run_and_its_history(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let doomed = key("wf", "run-1");
    let kept = key("other", "run-2");
    store.commit(1, range, start_batch(&doomed)).await.unwrap();
    store.commit(1, range, start_batch(&kept)).await.unwrap();
    let delete = ShardBatch {
        delete_executions: vec![doomed.clone()],
        ..ShardBatch::default()
    };
    store.commit(1, range, delete).await.unwrap();
    assert_eq!(store.get_execution(1, &doomed).await.unwrap(), None);
    assert!(
        store
            .read_history(1, &doomed, 1, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .get_current_execution(1, &doomed.namespace_id, &doomed.workflow_id)
            .await
            .unwrap(),
        None
    );
    assert!(store.get_execution(1, &kept).await.unwrap().is_some());
    assert_eq!(store.read_history(1, &kept, 1, 100).await.unwrap().len(), 1);
}
