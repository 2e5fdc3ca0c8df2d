//! `namespaces`: unique ids and names, compare-and-set updates.

use sundial_storage::{Error, MemberRow};

use super::{Harness, namespace};

pub async fn namespace_create_get_list(h: &dyn Harness) {
    let store = h.open();
    for (id, name) in [("id-b", "beta"), ("id-a", "alpha"), ("id-c", "Gamma")] {
        store
            .create_namespace(namespace(id, name, 1))
            .await
            .unwrap();
    }
    let names: Vec<_> = store
        .list_namespaces()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    // Bytewise order: upper case sorts first.
    assert_eq!(names, vec!["Gamma", "alpha", "beta"]);
    assert_eq!(
        store.get_namespace_by_name("alpha").await.unwrap(),
        Some(namespace("id-a", "alpha", 1))
    );
    assert_eq!(
        store.get_namespace_by_id("id-b").await.unwrap(),
        Some(namespace("id-b", "beta", 1))
    );
    assert_eq!(store.get_namespace_by_name("id-a").await.unwrap(), None);
    assert_eq!(store.get_namespace_by_id("alpha").await.unwrap(), None);
    assert_eq!(store.get_namespace_by_name("gamma").await.unwrap(), None);
}

pub async fn namespace_duplicate_is_rejected(h: &dyn Harness) {
    let store = h.open();
    store
        .create_namespace(namespace("id-1", "orders", 1))
        .await
        .unwrap();
    let err = store
        .create_namespace(namespace("id-1", "payments", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    let err = store
        .create_namespace(namespace("id-2", "orders", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        store.list_namespaces().await.unwrap(),
        vec![namespace("id-1", "orders", 1)]
    );
}

pub async fn namespace_update_compare_and_set(h: &dyn Harness) {
    let store = h.open();
    store
        .create_namespace(namespace("id-1", "orders", 1))
        .await
        .unwrap();
    store
        .create_namespace(namespace("id-2", "billing", 1))
        .await
        .unwrap();

    store
        .update_namespace(namespace("id-1", "orders", 2), 1)
        .await
        .unwrap();
    assert_eq!(
        store.get_namespace_by_id("id-1").await.unwrap(),
        Some(namespace("id-1", "orders", 2))
    );

    let err = store
        .update_namespace(namespace("id-1", "orders", 3), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::ConditionFailed(_)), "{err:?}");
    let err = store
        .update_namespace(namespace("id-9", "ghost", 2), 1)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err:?}");
    // Renaming onto another namespace's name is refused.
    let err = store
        .update_namespace(namespace("id-1", "billing", 3), 2)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err:?}");
    assert_eq!(
        store.get_namespace_by_id("id-1").await.unwrap(),
        Some(namespace("id-1", "orders", 2))
    );

    // A rename to a free name moves the name.
    store
        .update_namespace(namespace("id-1", "sales", 3), 2)
        .await
        .unwrap();
    assert_eq!(store.get_namespace_by_name("orders").await.unwrap(), None);
    assert_eq!(
        store.get_namespace_by_name("sales").await.unwrap(),
        Some(namespace("id-1", "sales", 3))
    );
}

pub fn cluster(name: &str, id: &str, shards: i32) -> sundial_storage::ClusterMetadataRow {
    sundial_storage::ClusterMetadataRow {
        cluster_name: name.into(),
        cluster_id: id.into(),
        history_shard_count: shards,
    }
}

/// The first writer of a cluster's row wins: later calls get its values back, not theirs.
pub async fn cluster_metadata_first_writer_wins(h: &dyn Harness) {
    let store = h.open();
    let first = cluster("active", "id-1", 4);
    assert_eq!(store.cluster_metadata(first.clone()).await.unwrap(), first);
    assert_eq!(
        store
            .cluster_metadata(cluster("active", "id-2", 16))
            .await
            .unwrap(),
        first
    );
    let other = cluster("standby", "id-3", 8);
    assert_eq!(store.cluster_metadata(other.clone()).await.unwrap(), other);
}

fn member(host: &str, role: &str, address: &str, started: i64, beat: i64) -> MemberRow {
    MemberRow {
        host_id: host.into(),
        role: role.into(),
        rpc_address: address.into(),
        session_start_ms: started,
        last_heartbeat_ms: beat,
        record_expiry_ms: beat + 10_000,
        gossip_address: format!("{address}-gossip"),
    }
}

/// A process's row is replaced by its next heartbeat; a role's listing holds the rows that beat
/// recently enough, the newest process first; expired rows are pruned.
pub async fn membership_rows_are_upserted_listed_by_role_and_pruned(h: &dyn Harness) {
    let store = h.open();
    let a = member("host-a", "history", "127.0.0.1:7234", 1_000, 5_000);
    let b = member("host-b", "history", "127.0.0.2:7234", 2_000, 5_500);
    let m = member("host-a", "matching", "127.0.0.1:7235", 1_000, 5_000);
    for row in [&a, &b, &m] {
        store.upsert_member(row.clone()).await.unwrap();
    }
    assert_eq!(
        store.list_members("history", 0).await.unwrap(),
        vec![b.clone(), a.clone()]
    );
    assert_eq!(store.list_members("matching", 0).await.unwrap(), vec![m]);
    assert_eq!(store.list_members("worker", 0).await.unwrap(), vec![]);
    // A's next heartbeat replaces its row; B's stays old and drops out of a recent listing.
    // A's gossip address is replaced too.
    let a2 = MemberRow {
        last_heartbeat_ms: 9_000,
        gossip_address: "127.0.0.1:6934".into(),
        record_expiry_ms: 19_000,
        ..a.clone()
    };
    store.upsert_member(a2.clone()).await.unwrap();
    assert_eq!(
        store.list_members("history", 8_000).await.unwrap(),
        vec![a2.clone()]
    );
    assert_eq!(
        store.list_members("history", 0).await.unwrap(),
        vec![b, a2.clone()]
    );
    // B's record expired at 15_500; A's (19_000) has not.
    store.prune_members(16_000).await.unwrap();
    assert_eq!(store.list_members("history", 0).await.unwrap(), vec![a2]);
}
