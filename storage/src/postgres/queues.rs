//! The PostgreSQL `namespaces`, `task_queues` and `tasks` tables: cluster-wide rows outside any
//! shard, fenced by their own versions and leases. A namespace write or a lease is a
//! transaction that learns its id before it commits, so a lost `COMMIT` answer is settled like
//! a shard commit's; a backlog write is one idempotent statement, settled by running it again.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::Row;

use super::pipeline::{Param, Pipeline, params};
use super::transaction::WriteTransaction;
use super::{PostgresStore, column, errors, single_row, sql_limit};
use crate::{
    ClusterMetadataRow, ClusterMetadataStore, Error, MemberRow, MembershipStore, NamespaceRow,
    NamespaceStore, QueueTask, Result, TaskQueueKey, TaskQueueStore,
};

const NAMESPACE_COLUMNS: &str = "id, name, notification_version, data";

fn namespace_row(row: &Row) -> Result<NamespaceRow> {
    Ok(NamespaceRow {
        id: column(row, 0)?,
        name: column(row, 1)?,
        notification_version: column(row, 2)?,
        data: column(row, 3)?,
    })
}

/// The columns of a namespace row, in `NAMESPACE_COLUMNS` order.
fn namespace_params(record: &NamespaceRow) -> Vec<Param> {
    params![
        record.id.clone(),
        record.name.clone(),
        record.notification_version,
        record.data.clone()
    ]
}

/// A statement failure where a unique violation means the namespace's id or name is taken.
fn namespace_write(name: &str) -> impl Fn(deadpool_postgres::tokio_postgres::Error) -> Error {
    move |e| {
        if errors::is_unique_violation(&e) {
            Error::AlreadyExists(format!("namespace {name}"))
        } else {
            errors::statement(e)
        }
    }
}

/// Inserts the row unless its cluster has one, and answers the stored row: the inserted one, or
/// the one there before (the statement's snapshot does not see its own insert).
const CLUSTER_METADATA: &str = "WITH inserted AS (
        INSERT INTO cluster_metadata (cluster_name, cluster_id, history_shard_count)
        VALUES ($1, $2, $3) ON CONFLICT (cluster_name) DO NOTHING
        RETURNING cluster_name, cluster_id, history_shard_count)
    SELECT * FROM inserted
    UNION ALL
    SELECT cluster_name, cluster_id, history_shard_count FROM cluster_metadata
    WHERE cluster_name = $1";

#[async_trait]
impl ClusterMetadataStore for PostgresStore {
    async fn cluster_metadata(&self, proposed: ClusterMetadataRow) -> Result<ClusterMetadataRow> {
        // A row inserted by a concurrent first writer after this statement's snapshot is seen
        // by neither half: the next statement sees it. (Running it again is harmless.)
        for _ in 0..3 {
            let rows = self
                .query(
                    CLUSTER_METADATA,
                    &[
                        &proposed.cluster_name,
                        &proposed.cluster_id,
                        &proposed.history_shard_count,
                    ],
                )
                .await?;
            if let Some(row) = rows.first() {
                return Ok(ClusterMetadataRow {
                    cluster_name: column(row, 0)?,
                    cluster_id: column(row, 1)?,
                    history_shard_count: column(row, 2)?,
                });
            }
        }
        Err(Error::Unavailable(
            "postgres: cluster_metadata row neither inserted nor found".into(),
        ))
    }

    fn persistence_store(&self) -> &'static str {
        "postgres12"
    }
}

#[async_trait]
impl MembershipStore for PostgresStore {
    async fn upsert_member(&self, m: MemberRow) -> Result<()> {
        self.query(
            "INSERT INTO cluster_membership (host_id, role, rpc_address, session_start_ms,
                 last_heartbeat_ms, record_expiry_ms, gossip_address)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (host_id, role) DO UPDATE SET rpc_address = excluded.rpc_address,
                 gossip_address = excluded.gossip_address,
                 session_start_ms = excluded.session_start_ms,
                 last_heartbeat_ms = excluded.last_heartbeat_ms,
                 record_expiry_ms = excluded.record_expiry_ms",
            &[
                &m.host_id,
                &m.role,
                &m.rpc_address,
                &m.session_start_ms,
                &m.last_heartbeat_ms,
                &m.record_expiry_ms,
                &m.gossip_address,
            ],
        )
        .await?;
        Ok(())
    }

    async fn list_members(&self, role: &str, alive_since_ms: i64) -> Result<Vec<MemberRow>> {
        let rows = self
            .query(
                "SELECT host_id, role, rpc_address, session_start_ms, last_heartbeat_ms,
                     record_expiry_ms, gossip_address FROM cluster_membership
                 WHERE role = $1 AND last_heartbeat_ms >= $2
                 ORDER BY session_start_ms DESC, host_id DESC",
                &[&role, &alive_since_ms],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(MemberRow {
                    host_id: column(row, 0)?,
                    role: column(row, 1)?,
                    rpc_address: column(row, 2)?,
                    session_start_ms: column(row, 3)?,
                    last_heartbeat_ms: column(row, 4)?,
                    record_expiry_ms: column(row, 5)?,
                    gossip_address: column(row, 6)?,
                })
            })
            .collect()
    }

    async fn prune_members(&self, now_ms: i64) -> Result<()> {
        self.query(
            "DELETE FROM cluster_membership WHERE record_expiry_ms < $1",
            &[&now_ms],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl NamespaceStore for PostgresStore {
    async fn create_namespace(&self, record: NamespaceRow) -> Result<()> {
        let mut insert = Pipeline::default();
        insert.push(
            "INSERT INTO namespaces (id, name, notification_version, data)
             VALUES ($1, $2, $3, $4) RETURNING txid_current()::text || '@' || pg_postmaster_start_time()::text",
            namespace_params(&record),
        );
        let (tx, answers) = WriteTransaction::begin(self.client().await?, insert)
            .await
            .map_err(namespace_write(&record.name))?;
        let xid = column(single_row(&answers)?, 0)?;
        tx.commit(Pipeline::default(), xid, &self.pool, errors::statement)
            .await
    }

    async fn update_namespace(&self, record: NamespaceRow, expected_version: i64) -> Result<()> {
        let mut read = Pipeline::default();
        read.push(
            "SELECT notification_version, txid_current()::text || '@' || pg_postmaster_start_time()::text FROM namespaces WHERE id = $1
             FOR UPDATE",
            params![record.id.clone()],
        );
        let (tx, answers) = WriteTransaction::begin(self.client().await?, read)
            .await
            .map_err(errors::statement)?;
        let Some(stored) = answers.first().and_then(|rows| rows.first()) else {
            return Err(Error::NotFound(format!("namespace {}", record.id)));
        };
        let (version, xid): (i64, String) = (column(stored, 0)?, column(stored, 1)?);
        if version != expected_version {
            return Err(Error::ConditionFailed(format!(
                "namespace {}: expected version {expected_version}, found {version}",
                record.name
            )));
        }
        let mut update = Pipeline::default();
        update.push(
            "UPDATE namespaces SET name = $2, notification_version = $3, data = $4
             WHERE id = $1",
            namespace_params(&record),
        );
        tx.commit(update, xid, &self.pool, namespace_write(&record.name))
            .await
    }

    async fn get_namespace_by_name(&self, name: &str) -> Result<Option<NamespaceRow>> {
        let sql = format!("SELECT {NAMESPACE_COLUMNS} FROM namespaces WHERE name = $1");
        let rows = self.query(&sql, &[&name]).await?;
        rows.first().map(namespace_row).transpose()
    }

    async fn get_namespace_by_id(&self, id: &str) -> Result<Option<NamespaceRow>> {
        let sql = format!("SELECT {NAMESPACE_COLUMNS} FROM namespaces WHERE id = $1");
        let rows = self.query(&sql, &[&id]).await?;
        rows.first().map(namespace_row).transpose()
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceRow>> {
        let sql = format!("SELECT {NAMESPACE_COLUMNS} FROM namespaces ORDER BY name");
        let rows = self.query(&sql, &[]).await?;
        rows.iter().map(namespace_row).collect()
    }
}

// A partition's backlog writes are one statement each, so one round trip in a transaction of
// its own: the lease row read under a share lock (an acquire of the lease waits for the
// statement, and a statement waiting for an acquire sees the new `range_id`), the write only
// if the lease is still `$5`, and the lease's `range_id` as the answer. Parameters: the
// partition's key ($1 to $4), the expected `range_id` ($5), then the write's.
macro_rules! under_lease {
    ($write:literal) => {
        concat!(
            "WITH lease AS (
                 SELECT range_id FROM task_queues
                 WHERE namespace_id = $1 AND name = $2 AND task_type = $3 AND partition = $4
                 FOR SHARE),
             change AS (",
            $write,
            ")
             SELECT range_id FROM lease"
        )
    };
}
const CREATE_TASKS: &str = under_lease!(
    "
INSERT INTO tasks (namespace_id, name, task_type, partition, task_id, data)
     SELECT $1, $2, $3, $4, t.task_id, t.data
     FROM unnest($6::int8[], $7::bytea[]) AS t(task_id, data)
     WHERE EXISTS (SELECT 1 FROM lease WHERE range_id = $5)
     ON CONFLICT (namespace_id, name, task_type, partition, task_id)
     DO UPDATE SET data = excluded.data"
);
// The rows' ids (ctid) are found by key first, one task id after another (a `LATERAL`
// subquery with `OFFSET 0` cannot be flattened): with `task_id = ANY(...)` a generic plan
// could take only the partition's key to the index and read the partition's whole backlog.
pub(super) const DELETE_TASKS: &str = under_lease!(
    "DELETE FROM tasks
     WHERE ctid = ANY(ARRAY(
         SELECT t.ctid FROM unnest($6::int8[]) AS k(task_id)
         CROSS JOIN LATERAL (
             SELECT ctid FROM tasks
             WHERE namespace_id = $1 AND name = $2 AND task_type = $3 AND partition = $4
               AND task_id = k.task_id
             OFFSET 0) t))
       AND EXISTS (SELECT 1 FROM lease WHERE range_id = $5)"
);

impl PostgresStore {
    /// Runs `write` (`CREATE_TASKS` or `DELETE_TASKS`) under the lease `range_id` of `key`.
    ///
    /// Both writes are idempotent (the same rows written again, the same ids deleted again), so
    /// a statement whose answer is lost with its connection is settled by running it once more
    /// on another connection: its answer then says what the store holds. When that answer is
    /// lost too, the call is `Unavailable` and may have landed; a task written twice is handed
    /// out twice, and history refuses its second start.
    async fn leased_write(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        write: &'static str,
        mut params: Vec<Param>,
    ) -> Result<()> {
        let mut all = params![
            key.namespace_id.clone(),
            key.name.clone(),
            key.task_type,
            key.partition,
            range_id
        ];
        all.append(&mut params);
        let mut statement = Pipeline::default();
        statement.push(write, all);
        let run = || async {
            let client = self.client().await?;
            let answer = statement.run(&client).await.into_iter().next();
            let answer = answer.expect("one answer per statement");
            // A broken connection must not serve the retry below.
            errors::release(client, answer.as_ref().err());
            Ok::<_, Error>(answer)
        };
        let rows = match run().await? {
            Err(e) if errors::connection_failed(&e) => run().await?,
            answer => answer,
        }
        .map_err(errors::statement)?;
        let actual = match rows.first() {
            Some(row) => column::<i64>(row, 0)?,
            None => 0,
        };
        if actual != range_id {
            return Err(Error::TaskQueueLeaseLost {
                expected: range_id,
                actual,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl TaskQueueStore for PostgresStore {
    async fn lease_task_queue(&self, key: &TaskQueueKey) -> Result<i64> {
        let mut lease = Pipeline::default();
        lease.push(
            "INSERT INTO task_queues (namespace_id, name, task_type, partition, range_id)
             VALUES ($1, $2, $3, $4, 1)
             ON CONFLICT (namespace_id, name, task_type, partition)
             DO UPDATE SET range_id = task_queues.range_id + 1
             RETURNING range_id, txid_current()::text || '@' || pg_postmaster_start_time()::text",
            params![
                key.namespace_id.clone(),
                key.name.clone(),
                key.task_type,
                key.partition
            ],
        );
        let (tx, answers) = WriteTransaction::begin(self.client().await?, lease)
            .await
            .map_err(errors::statement)?;
        let row = single_row(&answers)?;
        let (range_id, xid) = (column(row, 0)?, column(row, 1)?);
        tx.commit(Pipeline::default(), xid, &self.pool, errors::statement)
            .await?;
        Ok(range_id)
    }

    async fn create_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        tasks: Vec<QueueTask>,
    ) -> Result<()> {
        // One upsert cannot write a row twice: a later task with the same id wins.
        let tasks: BTreeMap<i64, Vec<u8>> =
            tasks.into_iter().map(|t| (t.task_id, t.data)).collect();
        let (ids, data): (Vec<i64>, Vec<Vec<u8>>) = tasks.into_iter().unzip();
        self.leased_write(key, range_id, CREATE_TASKS, params![ids, data])
            .await
    }

    async fn get_tasks(
        &self,
        key: &TaskQueueKey,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<QueueTask>> {
        let rows = self
            .query(
                "SELECT task_id, data FROM tasks
                 WHERE namespace_id = $1 AND name = $2 AND task_type = $3 AND partition = $4
                   AND task_id > $5
                 ORDER BY task_id LIMIT $6",
                &[
                    &key.namespace_id,
                    &key.name,
                    &key.task_type,
                    &key.partition,
                    &after_task_id,
                    &sql_limit(limit),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(QueueTask {
                    task_id: column(row, 0)?,
                    data: column(row, 1)?,
                })
            })
            .collect()
    }

    async fn delete_tasks(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        task_ids: &[i64],
    ) -> Result<()> {
        self.leased_write(key, range_id, DELETE_TASKS, params![task_ids.to_vec()])
            .await
    }
}
