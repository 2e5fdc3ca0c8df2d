//! The PostgreSQL `namespaces`, `task_queues` and `tasks` tables: cluster-wide rows outside any
//! shard, fenced by their own versions and leases. Every write is a transaction that learns
//! its id before it commits, so a lost `COMMIT` answer is settled like a shard commit's.

use std::collections::BTreeMap;

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::Row;

use super::pipeline::{Param, Pipeline, params};
use super::transaction::WriteTransaction;
use super::{PostgresStore, column, errors, single_row, sql_limit};
use crate::{Error, NamespaceRow, NamespaceStore, QueueTask, Result, TaskQueueKey, TaskQueueStore};

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

/// Reads the partition's lease under a share lock (an acquire waits for this transaction),
/// with the transaction id.
const LOCK_LEASE: &str = "SELECT range_id, txid_current()::text || '@' || pg_postmaster_start_time()::text FROM task_queues
     WHERE namespace_id = $1 AND name = $2 AND task_type = $3 AND partition = $4 FOR SHARE";

impl PostgresStore {
    /// Runs `write` (whose parameters start with the partition's key) beside the lease check
    /// of `key`, in one transaction and one round trip; commits only if the lease is
    /// `range_id`.
    async fn leased_write(
        &self,
        key: &TaskQueueKey,
        range_id: i64,
        write: &'static str,
        mut params: Vec<Param>,
    ) -> Result<()> {
        let key_params = || {
            params![
                key.namespace_id.clone(),
                key.name.clone(),
                key.task_type,
                key.partition
            ]
        };
        let mut pipeline = Pipeline::default();
        pipeline.push(LOCK_LEASE, key_params());
        let mut write_params = key_params();
        write_params.append(&mut params);
        pipeline.push(write, write_params);
        let (tx, answers) = WriteTransaction::begin(self.client().await?, pipeline)
            .await
            .map_err(errors::statement)?;
        // The write ran too; a lease that moved on rolls it back with the transaction.
        let (actual, xid) = match answers.first().and_then(|rows| rows.first()) {
            Some(row) => (column::<i64>(row, 0)?, column::<String>(row, 1)?),
            None => (0, String::new()),
        };
        if actual != range_id {
            return Err(Error::TaskQueueLeaseLost {
                expected: range_id,
                actual,
            });
        }
        tx.commit(Pipeline::default(), xid, &self.pool, errors::statement)
            .await
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
        self.leased_write(
            key,
            range_id,
            "INSERT INTO tasks (namespace_id, name, task_type, partition, task_id, data)
             SELECT $1, $2, $3, $4, * FROM unnest($5::int8[], $6::bytea[])
             ON CONFLICT (namespace_id, name, task_type, partition, task_id)
             DO UPDATE SET data = excluded.data",
            params![ids, data],
        )
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
        self.leased_write(
            key,
            range_id,
            "DELETE FROM tasks WHERE namespace_id = $1 AND name = $2 AND task_type = $3
               AND partition = $4 AND task_id = ANY($5::int8[])",
            params![task_ids.to_vec()],
        )
        .await
    }
}
