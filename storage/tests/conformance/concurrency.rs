//! Many tokio tasks committing to one shard at once.

use sundial_storage::{Error, ShardBatch, TransferTaskRow};

use super::{Harness, execution_write, history, key, start_batch};

/// Each task owns one run and chains its versions; every commit lands and is readable by its
/// writer right after it returns.
pub async fn concurrent_commits_on_one_shard_all_land(h: &dyn Harness) {
    const WORKFLOWS: i64 = 8;
    const VERSIONS: i64 = 20;
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let writers: Vec<_> = (0..WORKFLOWS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let k = key(&format!("wf-{w}"), "run");
                store.commit(1, range, start_batch(&k)).await.unwrap();
                for v in 2..=VERSIONS {
                    let batch = ShardBatch {
                        executions: vec![execution_write(&k, v, Some(v - 1))],
                        history: vec![history(&k, v, v, "event")],
                        transfer_tasks: vec![TransferTaskRow {
                            task_id: w * 1000 + v,
                            data: vec![],
                        }],
                        ..ShardBatch::default()
                    };
                    store.commit(1, range, batch).await.unwrap();
                    let row = store.get_execution(1, &k).await.unwrap().unwrap();
                    assert_eq!(row.db_version, v, "read after commit sees it");
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }

    let rows = store.list_executions(1, 1000).await.unwrap();
    assert_eq!(rows.len(), WORKFLOWS as usize);
    assert!(rows.iter().all(|r| r.db_version == VERSIONS));
    for w in 0..WORKFLOWS {
        let k = key(&format!("wf-{w}"), "run");
        let hist = store.read_history(1, &k, 0, i64::MAX).await.unwrap();
        assert_eq!(hist.len(), VERSIONS as usize);
    }
    let tasks = store.list_transfer_tasks(1, 0, 10_000).await.unwrap();
    assert_eq!(tasks.len(), (WORKFLOWS * (VERSIONS - 1)) as usize);
}

/// Tasks race read-modify-write on ONE run: the version check lets exactly one writer win each
/// version, so no update is lost and no version is written twice.
pub async fn racing_updates_to_one_execution_never_lose_one(h: &dyn Harness) {
    const RACERS: i64 = 6;
    const WINS_EACH: i64 = 8;
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let k = key("hot", "run");
    store.commit(1, range, start_batch(&k)).await.unwrap();
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (store, k) = (store.clone(), k.clone());
            tokio::spawn(async move {
                let mut wins = 0;
                while wins < WINS_EACH {
                    let seen = store
                        .get_execution(1, &k)
                        .await
                        .unwrap()
                        .unwrap()
                        .db_version;
                    let batch = ShardBatch {
                        executions: vec![execution_write(&k, seen + 1, Some(seen))],
                        // One transfer task per version: a double write would be caught below.
                        transfer_tasks: vec![TransferTaskRow {
                            task_id: seen + 1,
                            data: vec![],
                        }],
                        ..ShardBatch::default()
                    };
                    match store.commit(1, range, batch).await {
                        Ok(()) => wins += 1,
                        Err(Error::ConditionFailed(_)) => tokio::task::yield_now().await,
                        Err(e) => panic!("unexpected {e:?}"),
                    }
                }
            })
        })
        .collect();
    for r in racers {
        r.await.unwrap();
    }
    let total = RACERS * WINS_EACH;
    let row = store.get_execution(1, &k).await.unwrap().unwrap();
    assert_eq!(row.db_version, 1 + total);
    let ids: Vec<_> = store
        .list_transfer_tasks(1, 0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.task_id)
        .collect();
    assert_eq!(ids, (2..=1 + total).collect::<Vec<_>>());
}

/// Commits of several shards at once (a backend may carry them in one transaction): a fenced
/// shard's batches fail and write nothing, the other shards' batches all land.
pub async fn a_fenced_shard_fails_alone_among_concurrent_shards(h: &dyn Harness) {
    const SHARDS: i32 = 4;
    const COMMITS: i64 = 25;
    let store = h.open();
    let mut ranges = Vec::new();
    for shard in 1..=SHARDS {
        ranges.push(
            store
                .acquire_shard(shard, "owner-a")
                .await
                .unwrap()
                .range_id,
        );
    }
    // Shard 1 is taken by another owner before anyone commits.
    store.acquire_shard(1, "owner-a").await.unwrap();
    let writers: Vec<_> = (1..=SHARDS)
        .map(|shard| {
            let store = store.clone();
            let range = ranges[(shard - 1) as usize];
            tokio::spawn(async move {
                for c in 0..COMMITS {
                    let batch = ShardBatch {
                        transfer_tasks: vec![TransferTaskRow {
                            task_id: c,
                            data: vec![],
                        }],
                        ..ShardBatch::default()
                    };
                    let result = store.commit(shard, range, batch).await;
                    if shard == 1 {
                        assert!(
                            matches!(result, Err(Error::ShardOwnershipLost { .. })),
                            "{result:?}"
                        );
                    } else {
                        result.unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    for shard in 1..=SHARDS {
        let tasks = store.list_transfer_tasks(shard, -1, 1_000).await.unwrap();
        let want = if shard == 1 { 0 } else { COMMITS as usize };
        assert_eq!(tasks.len(), want, "shard {shard}");
    }
}
