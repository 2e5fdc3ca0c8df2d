//! The SQLite `namespaces`, `task_queues` and `tasks` tables: cluster-wide rows outside any
//! shard, fenced by their own versions and leases.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{SqliteStore, begin, sql_limit};
use crate::{
    ClusterMetadataRow, ClusterMetadataStore, Error, MemberRow, MembershipStore, NamespaceRow,
    NamespaceStore, QueueTask, Result, TaskQueueKey, TaskQueueStore,
};

fn namespace_row(row: &Row<'_>) -> rusqlite::Result<NamespaceRow> {
    Ok(NamespaceRow {
        id: row.get(0)?,
        name: row.get(1)?,
        notification_version: row.get(2)?,
        data: row.get(3)?,
    })
}

const NAMESPACE_COLUMNS: &str = "id, name, notification_version, data";

#[async_trait]
impl ClusterMetadataStore for SqliteStore {
    async fn cluster_metadata(&self, proposed: ClusterMetadataRow) -> Result<ClusterMetadataRow> {
        self.write(move |conn| {
            let tx = begin(conn)?;
            tx.execute(
                "INSERT OR IGNORE INTO cluster_metadata
                     (cluster_name, cluster_id, history_shard_count) VALUES (?1, ?2, ?3)",
                params![
                    proposed.cluster_name,
                    proposed.cluster_id,
                    proposed.history_shard_count
                ],
            )?;
            let stored = tx.query_row(
                "SELECT cluster_name, cluster_id, history_shard_count FROM cluster_metadata
                 WHERE cluster_name = ?1",
                [&proposed.cluster_name],
                |row| {
                    Ok(ClusterMetadataRow {
                        cluster_name: row.get(0)?,
                        cluster_id: row.get(1)?,
                        history_shard_count: row.get(2)?,
                    })
                },
            )?;
            tx.commit()?;
            Ok(stored)
        })
        .await
    }

    fn persistence_store(&self) -> &'static str {
        "sqlite"
    }
}

#[async_trait]
impl NamespaceStore for SqliteStore {
    async fn create_namespace(&self, record: NamespaceRow) -> Result<()> {
        self.write(move |conn| {
            let tx = begin(conn)?;
            let taken = tx
                .query_row(
                    "SELECT 1 FROM namespaces WHERE id = ?1 OR name = ?2",
                    params![record.id, record.name],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if taken {
                return Err(Error::AlreadyExists(format!("namespace {}", record.name)));
            }
            tx.execute(
                "INSERT INTO namespaces (id, name, notification_version, data)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    record.id,
                    record.name,
                    record.notification_version,
                    record.data
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn update_namespace(&self, record: NamespaceRow, expected_version: i64) -> Result<()> {
        self.write(move |conn| {
            let tx = begin(conn)?;
            let stored: Option<i64> = tx
                .query_row(
                    "SELECT notification_version FROM namespaces WHERE id = ?1",
                    [&record.id],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(stored) = stored else {
                return Err(Error::NotFound(format!("namespace {}", record.id)));
            };
            if stored != expected_version {
                return Err(Error::ConditionFailed(format!(
                    "namespace {}: expected version {expected_version}, found {stored}",
                    record.name
                )));
            }
            let name_taken = tx
                .query_row(
                    "SELECT 1 FROM namespaces WHERE name = ?1 AND id != ?2",
                    params![record.name, record.id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if name_taken {
                return Err(Error::AlreadyExists(format!("namespace {}", record.name)));
            }
            tx.execute(
                "UPDATE namespaces SET name = ?2, notification_version = ?3, data = ?4
                 WHERE id = ?1",
                params![
                    record.id,
                    record.name,
                    record.notification_version,
                    record.data
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn get_namespace_by_name(&self, name: &str) -> Result<Option<NamespaceRow>> {
        let name = name.to_string();
        self.read(move |conn| {
            let sql = format!("SELECT {NAMESPACE_COLUMNS} FROM namespaces WHERE name = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([name], namespace_row)
                .optional()?)
        })
        .await
    }

    async fn get_namespace_by_id(&self, id: &str) -> Result<Option<NamespaceRow>> {
        let id = id.to_string();
        self.read(move |conn| {
            let sql = format!("SELECT {NAMESPACE_COLUMNS} FROM namespaces WHERE id = ?1");
            Ok(conn
                .prepare_cached(&sql)?
                .query_row([id], namespace_row)
                .optional()?)
        })
        .await
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRow>> {
        self.read(move |conn| {
            let sql = format!("SELECT {NAMESPACE_COLUMNS} FROM namespaces ORDER BY name");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map([], namespace_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}

#[async_trait]
impl MembershipStore for SqliteStore {
    async fn upsert_member(&self, m: MemberRow) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO cluster_membership (host_id, role, rpc_address, session_start_ms,
                     last_heartbeat_ms, record_expiry_ms, gossip_address)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (host_id, role) DO UPDATE SET rpc_address = excluded.rpc_address,
                     gossip_address = excluded.gossip_address,
                     session_start_ms = excluded.session_start_ms,
                     last_heartbeat_ms = excluded.last_heartbeat_ms,
                     record_expiry_ms = excluded.record_expiry_ms",
            )?
            .execute(params![
                m.host_id,
                m.role,
                m.rpc_address,
                m.session_start_ms,
                m.last_heartbeat_ms,
                m.record_expiry_ms,
                m.gossip_address
            ])?;
            Ok(())
        })
        .await
    }

    async fn list_members(&self, role: &str, alive_since_ms: i64) -> Result<Vec<MemberRow>> {
        let role = role.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT host_id, role, rpc_address, session_start_ms, last_heartbeat_ms,
                     record_expiry_ms, gossip_address FROM cluster_membership
                 WHERE role = ?1 AND last_heartbeat_ms >= ?2
                 ORDER BY session_start_ms DESC, host_id DESC",
            )?;
            let rows = stmt.query_map(params![role, alive_since_ms], |row| {
                Ok(MemberRow {
                    host_id: row.get(0)?,
                    role: row.get(1)?,
                    rpc_address: row.get(2)?,
                    session_start_ms: row.get(3)?,
                    last_heartbeat_ms: row.get(4)?,
                    record_expiry_ms: row.get(5)?,
                    gossip_address: row.get(6)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn prune_members(&self, now_ms: i64) -> Result<()> {
        self.write(move |conn| {
            conn.prepare_cached("DELETE FROM cluster_membership WHERE record_expiry_ms < ?1")?
                .execute([now_ms])?;
            Ok(())
        })
        .await
    }
}

/// Fails with [`Error::TaskQueueLeaseLost`] unless the partition's lease is `range_id`.
fn check_lease(tx: &Connection, key: &TaskQueueKey, range_id: i64) -> Result<()> {
    let actual: i64 = tx
        .query_row(
            "SELECT range_id FROM task_queues
             WHERE namespace_id = ?1 AND name = ?2 AND task_type = ?3 AND partition = ?4",
            params![key.namespace_id, key.name, key.task_type, key.partition],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0);
    if actual != range_id {
        return Err(Error::TaskQueueLeaseLost {
            expected: range_id,
            actual,
        });
    }
    Ok(())
}

#[async_trait]
impl TaskQueueStore for SqliteStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<i64> {
        let key = key.clone();
        self.write(move |conn| {
            let tx = begin(conn)?;
            let range_id = tx.query_row(
                "INSERT INTO task_queues (namespace_id, name, task_type, partition, range_id)
                 VALUES (?1, ?2, ?3, ?4, 1)
                 ON CONFLICT (namespace_id, name, task_type, partition)
                 DO UPDATE SET range_id = range_id + 1
                 RETURNING range_id",
                params![key.namespace_id, key.name, key.task_type, key.partition],
                |row| row.get(0),
            )?;
            tx.commit()?;
            Ok(range_id)
        })
        .await
    }

    async fn create_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        tasks: Vec<QueueTask>,
    ) -> Result<()> {
        let key = key.clone();
        // Grouped with the other writes waiting for the writer (one COMMIT for all).
        self.writer
            .run_grouped(move |tx| {
                check_lease(tx, &key, range_id)?;
                {
                    let mut stmt = tx.prepare_cached(
                        "INSERT OR REPLACE INTO tasks
                     (namespace_id, name, task_type, partition, task_id, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?;
                    for task in tasks {
                        stmt.execute(params![
                            key.namespace_id,
                            key.name,
                            key.task_type,
                            key.partition,
                            task.task_id,
                            task.data
                        ])?;
                    }
                }
                Ok(())
            })
            .await
    }

    async fn get_tasks(
        &self,
        key: &TaskQueueKey,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<QueueTask>> {
        let key = key.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT task_id, data FROM tasks
                 WHERE namespace_id = ?1 AND name = ?2 AND task_type = ?3 AND partition = ?4
                   AND task_id > ?5
                 ORDER BY task_id LIMIT ?6",
            )?;
            let rows = stmt.query_map(
                params![
                    key.namespace_id,
                    key.name,
                    key.task_type,
                    key.partition,
                    after_task_id,
                    sql_limit(limit)
                ],
                |row| {
                    Ok(QueueTask {
                        task_id: row.get(0)?,
                        data: row.get(1)?,
                    })
                },
            )?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn delete_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        task_ids: &[i64],
    ) -> Result<()> {
        let (key, task_ids) = (key.clone(), task_ids.to_vec());
        // Grouped with the other writes waiting for the writer (one COMMIT for all).
        self.writer
            .run_grouped(move |tx| {
                check_lease(tx, &key, range_id)?;
                {
                    let mut stmt = tx.prepare_cached(
                        "DELETE FROM tasks WHERE namespace_id = ?1 AND name = ?2 AND task_type = ?3
                       AND partition = ?4 AND task_id = ?5",
                    )?;
                    for id in task_ids {
                        stmt.execute(params![
                            key.namespace_id,
                            key.name,
                            key.task_type,
                            key.partition,
                            id
                        ])?;
                    }
                }
                Ok(())
            })
            .await
    }
}
