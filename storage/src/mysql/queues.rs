//! The MySQL `namespaces`, `task_queues` and `tasks` tables: cluster-wide rows outside any
//! shard, fenced by their own versions and leases.

use async_trait::async_trait;
use mysql_async::Transaction;
use mysql_async::prelude::Queryable;

use super::error::TxResult;
use super::{MysqlStore, first_row, insert_new, sql_limit};
use crate::{
    ClusterMetadataRow, ClusterMetadataStore, Error, MemberRow, MembershipStore, NamespaceRow,
    NamespaceStore, QueueTask, Result, TaskQueueKey, TaskQueueStore,
};

const NAMESPACE_COLUMNS: &str = "SELECT id, name, notification_version, data FROM namespaces";
type NamespaceColumns = (String, String, i64, Vec<u8>);

fn namespace_row((id, name, notification_version, data): NamespaceColumns) -> NamespaceRow {
    NamespaceRow {
        id,
        name,
        notification_version,
        data,
    }
}

/// Inserts a namespace; its id is the primary key and its name unique, so either taken is a
/// duplicate key.
async fn insert_namespace(tx: &mut Transaction<'_>, record: &NamespaceRow) -> TxResult<()> {
    insert_new(
        tx,
        "INSERT INTO namespaces (id, name, notification_version, data) VALUES (?, ?, ?, ?)",
        (
            &record.id,
            &record.name,
            record.notification_version,
            &record.data,
        ),
        || Error::AlreadyExists(format!("namespace {}", record.name)),
    )
    .await
}

/// Replaces a namespace row if its version is `expected_version`.
async fn replace_namespace(
    tx: &mut Transaction<'_>,
    record: &NamespaceRow,
    expected_version: i64,
) -> TxResult<()> {
    let stored: Option<i64> = first_row(
        tx,
        "SELECT notification_version FROM namespaces WHERE id = ? FOR UPDATE",
        (&record.id,),
    )
    .await?;
    let Some(stored) = stored else {
        return Err(Error::NotFound(format!("namespace {}", record.id)).into());
    };
    if stored != expected_version {
        return Err(Error::ConditionFailed(format!(
            "namespace {}: expected version {expected_version}, found {stored}",
            record.name
        ))
        .into());
    }
    // A name that belongs to another namespace is a duplicate key of the unique index.
    insert_new(
        tx,
        "UPDATE namespaces SET name = ?, notification_version = ?, data = ? WHERE id = ?",
        (
            &record.name,
            record.notification_version,
            &record.data,
            &record.id,
        ),
        || Error::AlreadyExists(format!("namespace {}", record.name)),
    )
    .await
}

#[async_trait]
impl ClusterMetadataStore for MysqlStore {
    async fn cluster_metadata(&self, proposed: ClusterMetadataRow) -> Result<ClusterMetadataRow> {
        let proposed = &proposed;
        self.transaction(|mut tx| async move {
            let stored = async {
                tx.exec_drop(
                    "INSERT IGNORE INTO cluster_metadata
                         (cluster_name, cluster_id, history_shard_count) VALUES (?, ?, ?)",
                    (
                        &proposed.cluster_name,
                        &proposed.cluster_id,
                        proposed.history_shard_count,
                    ),
                )
                .await?;
                let row: Option<(String, String, i32)> = first_row(
                    &mut tx,
                    "SELECT cluster_name, cluster_id, history_shard_count FROM cluster_metadata
                     WHERE cluster_name = ?",
                    (&proposed.cluster_name,),
                )
                .await?;
                let (cluster_name, cluster_id, history_shard_count) = row.ok_or_else(|| {
                    Error::Backend("mysql: cluster_metadata row missing after insert".into())
                })?;
                Ok(ClusterMetadataRow {
                    cluster_name,
                    cluster_id,
                    history_shard_count,
                })
            }
            .await;
            (tx, stored)
        })
        .await
    }

    fn persistence_store(&self) -> &'static str {
        "mysql8"
    }
}

type MemberColumns = (String, String, String, i64, i64, i64, String);

#[async_trait]
impl MembershipStore for MysqlStore {
    async fn upsert_member(&self, m: MemberRow) -> Result<()> {
        let m = &m;
        self.transaction(|mut tx| async move {
            let written = tx
                .exec_drop(
                    "INSERT INTO cluster_membership (host_id, role, rpc_address, session_start_ms,
                         last_heartbeat_ms, record_expiry_ms, gossip_address)
                     VALUES (?, ?, ?, ?, ?, ?, ?)
                     ON DUPLICATE KEY UPDATE rpc_address = VALUES(rpc_address),
                         gossip_address = VALUES(gossip_address),
                         session_start_ms = VALUES(session_start_ms),
                         last_heartbeat_ms = VALUES(last_heartbeat_ms),
                         record_expiry_ms = VALUES(record_expiry_ms)",
                    (
                        &m.host_id,
                        &m.role,
                        &m.rpc_address,
                        m.session_start_ms,
                        m.last_heartbeat_ms,
                        m.record_expiry_ms,
                        &m.gossip_address,
                    ),
                )
                .await
                .map_err(Into::into);
            (tx, written)
        })
        .await
    }

    async fn list_members(&self, role: &str, alive_since_ms: i64) -> Result<Vec<MemberRow>> {
        let rows: Vec<MemberColumns> = self
            .select(
                "SELECT host_id, role, rpc_address, session_start_ms, last_heartbeat_ms,
                     record_expiry_ms, gossip_address FROM cluster_membership
                 WHERE role = ? AND last_heartbeat_ms >= ?
                 ORDER BY session_start_ms DESC, host_id DESC",
                (role, alive_since_ms),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(
                    host_id,
                    role,
                    rpc_address,
                    session_start_ms,
                    last_heartbeat_ms,
                    record_expiry_ms,
                    gossip_address,
                )| {
                    MemberRow {
                        host_id,
                        role,
                        rpc_address,
                        session_start_ms,
                        last_heartbeat_ms,
                        record_expiry_ms,
                        gossip_address,
                    }
                },
            )
            .collect())
    }

    async fn prune_members(&self, now_ms: i64) -> Result<()> {
        self.transaction(|mut tx| async move {
            let deleted = tx
                .exec_drop(
                    "DELETE FROM cluster_membership WHERE record_expiry_ms < ?",
                    (now_ms,),
                )
                .await
                .map_err(Into::into);
            (tx, deleted)
        })
        .await
    }
}

#[async_trait]
impl NamespaceStore for MysqlStore {
    async fn create_namespace(&self, record: NamespaceRow) -> Result<()> {
        let record = &record;
        self.transaction(|mut tx| async move {
            let inserted = insert_namespace(&mut tx, record).await;
            (tx, inserted)
        })
        .await
    }

    async fn update_namespace(&self, record: NamespaceRow, expected_version: i64) -> Result<()> {
        let record = &record;
        self.transaction(|mut tx| async move {
            let replaced = replace_namespace(&mut tx, record, expected_version).await;
            (tx, replaced)
        })
        .await
    }

    async fn get_namespace_by_name(&self, name: &str) -> Result<Option<NamespaceRow>> {
        let sql = format!("{NAMESPACE_COLUMNS} WHERE name = ?");
        let row = self.select_first(&sql, (name,)).await?;
        Ok(row.map(namespace_row))
    }

    async fn get_namespace_by_id(&self, id: &str) -> Result<Option<NamespaceRow>> {
        let sql = format!("{NAMESPACE_COLUMNS} WHERE id = ?");
        let row = self.select_first(&sql, (id,)).await?;
        Ok(row.map(namespace_row))
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRow>> {
        let sql = format!("{NAMESPACE_COLUMNS} ORDER BY name");
        let rows: Vec<NamespaceColumns> = self.select(&sql, ()).await?;
        Ok(rows.into_iter().map(namespace_row).collect())
    }
}

/// A partition's key as statement parameters.
fn queue_key(key: &TaskQueueKey) -> (&str, &str, i32, i32) {
    (&key.namespace_id, &key.name, key.task_type, key.partition)
}

/// Reads the partition's lease with a shared lock held to the end of the transaction (a new
/// lease waits for the writes in flight) and fails unless it is `range_id`.
async fn check_lease(tx: &mut Transaction<'_>, key: &TaskQueueKey, range_id: i64) -> TxResult<()> {
    let (ns, name, task_type, partition) = queue_key(key);
    let actual = first_row::<i64>(
        tx,
        "SELECT range_id FROM task_queues
         WHERE namespace_id = ? AND name = ? AND task_type = ? AND partition_id = ?
         LOCK IN SHARE MODE",
        (ns, name, task_type, partition),
    )
    .await?
    .unwrap_or(0);
    if actual != range_id {
        return Err(Error::TaskQueueLeaseLost {
            expected: range_id,
            actual,
        }
        .into());
    }
    Ok(())
}

/// Takes a partition's lease: creates its row or increments its `range_id`.
async fn lease(tx: &mut Transaction<'_>, key: &TaskQueueKey) -> TxResult<i64> {
    tx.exec_drop(
        "INSERT INTO task_queues (namespace_id, name, task_type, partition_id, range_id)
         VALUES (?, ?, ?, ?, 1)
         ON DUPLICATE KEY UPDATE range_id = range_id + 1",
        queue_key(key),
    )
    .await?;
    let range_id = first_row::<i64>(
        tx,
        "SELECT range_id FROM task_queues
         WHERE namespace_id = ? AND name = ? AND task_type = ? AND partition_id = ?",
        queue_key(key),
    )
    .await?
    .ok_or_else(|| Error::Backend(format!("task queue {} vanished while leased", key.name)))?;
    Ok(range_id)
}

/// Appends backlog tasks under the lease `range_id`.
async fn insert_tasks(
    tx: &mut Transaction<'_>,
    key: &TaskQueueKey,
    range_id: i64,
    tasks: &[QueueTask],
) -> TxResult<()> {
    check_lease(tx, key, range_id).await?;
    if tasks.is_empty() {
        return Ok(());
    }
    let (ns, name, task_type, partition) = queue_key(key);
    tx.exec_batch(
        "INSERT INTO tasks (namespace_id, name, task_type, partition_id, task_id, data)
         VALUES (?, ?, ?, ?, ?, ?)
         ON DUPLICATE KEY UPDATE data = VALUES(data)",
        tasks
            .iter()
            .map(|t| (ns, name, task_type, partition, t.task_id, &t.data)),
    )
    .await?;
    Ok(())
}

/// Deletes backlog tasks under the lease `range_id`.
async fn remove_tasks(
    tx: &mut Transaction<'_>,
    key: &TaskQueueKey,
    range_id: i64,
    task_ids: &[i64],
) -> TxResult<()> {
    check_lease(tx, key, range_id).await?;
    if task_ids.is_empty() {
        return Ok(());
    }
    let (ns, name, task_type, partition) = queue_key(key);
    tx.exec_batch(
        "DELETE FROM tasks WHERE namespace_id = ? AND name = ? AND task_type = ?
           AND partition_id = ? AND task_id = ?",
        task_ids
            .iter()
            .map(|id| (ns, name, task_type, partition, *id)),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl TaskQueueStore for MysqlStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<i64> {
        self.transaction(|mut tx| async move {
            let leased = lease(&mut tx, key).await;
            (tx, leased)
        })
        .await
    }

    async fn create_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        tasks: Vec<QueueTask>,
    ) -> Result<()> {
        let tasks = &tasks;
        self.transaction(|mut tx| async move {
            let created = insert_tasks(&mut tx, key, range_id, tasks).await;
            (tx, created)
        })
        .await
    }

    async fn get_tasks(
        &self,
        key: &TaskQueueKey,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<QueueTask>> {
        let (ns, name, task_type, partition) = queue_key(key);
        let rows: Vec<(i64, Vec<u8>)> = self
            .select(
                "SELECT task_id, data FROM tasks
                 WHERE namespace_id = ? AND name = ? AND task_type = ? AND partition_id = ?
                   AND task_id > ?
                 ORDER BY task_id LIMIT ?",
                (
                    ns,
                    name,
                    task_type,
                    partition,
                    after_task_id,
                    sql_limit(limit),
                ),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(task_id, data)| QueueTask { task_id, data })
            .collect())
    }

    async fn delete_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        task_ids: &[i64],
    ) -> Result<()> {
        self.transaction(|mut tx| async move {
            let deleted = remove_tasks(&mut tx, key, range_id, task_ids).await;
            (tx, deleted)
        })
        .await
    }
}
