//! The PostgreSQL backend: a pool of connections (`deadpool-postgres` over `tokio-postgres`).
//!
//! Every write is one transaction on a pooled connection, so the commits of different shards
//! run in parallel, each in its own transaction. A shard's [`ShardStore::commit`] reads the
//! shard row with a lock in the same transaction as its writes (`FOR SHARE`, or a conditional
//! `UPDATE` when the batch rewrites the shard's data), so an [`acquire_shard`] that bumps
//! `range_id` waits for the commits in flight and fences every later one; row conditions are
//! checked under row locks and by unique keys, and any failure rolls the whole batch back.
//! Failures map to [`Error`] as `errors` describes: retryable before `COMMIT`, settled by
//! reading the transaction's status after.
//!
//! The schema is versioned (see [`schema`]); [`PostgresStore::open`] refuses a database whose
//! schema is missing or older, naming the command that fixes it. Connections may use TLS
//! (rustls), as `tls` describes.
//!
//! [`acquire_shard`]: ShardStore::acquire_shard

mod commit;
mod errors;
mod options;
mod pipeline;
#[cfg(test)]
mod plans;
mod queues;
pub mod schema;
mod tls;
mod transaction;
mod visibility;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::tokio_postgres::Row;
use deadpool_postgres::tokio_postgres::types::{FromSql, ToSql};
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, WeakPool,
};
use tokio::task::AbortHandle;

pub use options::{DEFAULT_MAX_CONNS, PostgresOptions, TlsOptions};
use pipeline::{Pipeline, params};
use transaction::WriteTransaction;

use crate::visibility::columns;
use crate::{
    CurrentExecutionRow, Error, ExecutionKey, ExecutionReader, ExecutionRow, HistoryBatch, Result,
    ShardBatch, ShardInfo, ShardStore, TimerTaskRow, TransferTaskRow, VisibilityStore,
};

/// How often idle connections past `maxIdleConns` or `maxConnLifetime` are closed.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(1);

/// A store kept in a PostgreSQL database.
///
/// Cheap to share behind an `Arc`; dropping it closes the pool's connections.
pub struct PostgresStore {
    pool: Pool,
    /// `PostgreSQL at host:port (database ..., user ...)`, for messages.
    target: String,
    /// Closes surplus idle connections, when the options ask for it.
    housekeeping: Option<AbortHandle>,
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(task) = &self.housekeeping {
            task.abort();
        }
        self.pool.close();
    }
}

impl PostgresStore {
    /// Opens a store on a database whose schema is current. An empty database or an older
    /// schema is refused with an error naming `sundial schema setup` or `sundial schema
    /// update`; an unreachable server is [`Error::Unavailable`].
    pub async fn open(options: &PostgresOptions) -> Result<Self> {
        schema::state(options).await?.require_current(options)?;
        Self::connect(options)
    }

    /// Creates the database if it is missing (and the user may), sets up or updates its schema,
    /// then opens the store: `--auto-setup`, for development.
    pub async fn open_with_auto_setup(options: &PostgresOptions) -> Result<Self> {
        schema::auto_setup(options).await?;
        Self::open(options).await
    }

    /// The pool, without looking at the schema. Connections open on first use.
    fn connect(options: &PostgresOptions) -> Result<Self> {
        let (config, tls) = options.connection(&options.database_name)?;
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(options::DEFAULT_CONNECT_TIMEOUT);
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let mut builder = Pool::builder(manager)
            .max_size(options.pool_size())
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options::POOL_WAIT))
            .create_timeout(Some(connect_timeout))
            .recycle_timeout(Some(connect_timeout));
        let lifetime = options.lifetime_limit();
        if let Some(limit) = lifetime {
            builder = builder.pre_recycle(Hook::sync_fn(move |_, metrics| {
                if metrics.age() >= limit {
                    Err(HookError::message("older than maxConnLifetime"))
                } else {
                    Ok(())
                }
            }));
        }
        let pool = builder
            .build()
            .map_err(|e| Error::Backend(format!("postgres pool: {e}")))?;
        let idle = options.idle_limit();
        let housekeeping = (idle < options.pool_size() || lifetime.is_some()).then(|| {
            tokio::spawn(close_surplus_connections(pool.weak(), idle, lifetime)).abort_handle()
        });
        Ok(Self {
            pool,
            target: options.describe(),
            housekeeping,
        })
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| errors::pool(e, &self.target))
    }

    /// Runs a read of `sql` on a pooled connection.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let answer = match client.prepare_cached(sql).await {
            Ok(stmt) => client.query(&stmt, params).await,
            Err(e) => Err(e),
        };
        errors::release(client, answer.as_ref().err());
        answer.map_err(errors::statement)
    }

    /// Runs `sql`, built for this call (a listing's filter), without keeping it prepared on
    /// the connection: filters are too many to cache.
    async fn query_once(&self, sql: &str, params: Vec<pipeline::Param>) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let answer = client.query(sql, &params).await;
        errors::release(client, answer.as_ref().err());
        answer.map_err(errors::statement)
    }

    /// History batches of a run selected by `sql`, whose parameters are the shard, the run's
    /// key and two event ids (`$5`, `$6`); nothing when `from >= to`.
    async fn history_batches(
        &self,
        sql: &str,
        shard_id: i32,
        key: &ExecutionKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<HistoryBatch>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let params: [&(dyn ToSql + Sync); 6] = [
            &shard_id,
            &key.namespace_id,
            &key.workflow_id,
            &key.run_id,
            &from,
            &to,
        ];
        self.query(sql, &params)
            .await?
            .iter()
            .map(|row| {
                Ok(HistoryBatch {
                    first_event_id: column(row, 0)?,
                    txn_id: column(row, 1)?,
                    events: column(row, 2)?,
                })
            })
            .collect()
    }
}

/// Closes idle connections past `idle_limit` and those older than `lifetime`, until the pool
/// is gone.
async fn close_surplus_connections(pool: WeakPool, idle_limit: usize, lifetime: Option<Duration>) {
    let mut ticks = tokio::time::interval(HOUSEKEEPING_PERIOD);
    loop {
        ticks.tick().await;
        let Some(pool) = pool.upgrade() else {
            return;
        };
        if let Some(limit) = lifetime {
            pool.retain(|_, metrics| metrics.age() < limit);
        }
        // The oldest idle connections go first (the pool hands out the front of its queue).
        let idle = pool.retain(|_, _| true).retained;
        let mut surplus = idle.saturating_sub(idle_limit);
        pool.retain(|_, _| {
            if surplus == 0 {
                return true;
            }
            surplus -= 1;
            false
        });
    }
}

/// Column `i` of `row`.
fn column<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|e| Error::Backend(format!("postgres: column {i}: {}", errors::describe(&e))))
}

/// The one row the first statement of a pipeline returned.
fn single_row(answers: &[Vec<Row>]) -> Result<&Row> {
    answers
        .first()
        .and_then(|rows| rows.first())
        .ok_or_else(|| Error::Backend("postgres: a statement returned no row".to_string()))
}

/// A `usize` limit as an SQL `LIMIT`.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A shard's row from its first three columns: `range_id, data, owner`.
fn shard_info(shard_id: i32, row: &Row) -> Result<ShardInfo> {
    Ok(ShardInfo {
        shard_id,
        range_id: column(row, 0)?,
        data: column(row, 1)?,
        owner: column(row, 2)?,
    })
}

fn execution_row(row: &Row) -> Result<ExecutionRow> {
    Ok(ExecutionRow {
        key: ExecutionKey {
            namespace_id: column(row, 0)?,
            workflow_id: column(row, 1)?,
            run_id: column(row, 2)?,
        },
        state: column(row, 3)?,
        db_version: column(row, 4)?,
        next_event_id: column(row, 5)?,
    })
}

#[async_trait]
impl ShardStore for PostgresStore {
    async fn acquire_shard(&self, shard_id: i32, owner: &str) -> Result<ShardInfo> {
        let mut acquire = Pipeline::default();
        acquire.push(
            "INSERT INTO shards (shard_id, range_id, data, owner) VALUES ($1, 1, '', $2)
             ON CONFLICT (shard_id) DO UPDATE SET range_id = shards.range_id + 1, owner = $2
             RETURNING range_id, data, owner,
                 txid_current()::text || '@' || pg_postmaster_start_time()::text",
            params![shard_id, owner.to_string()],
        );
        let (tx, answers) = WriteTransaction::begin(self.client().await?, acquire)
            .await
            .map_err(errors::statement)?;
        let row = single_row(&answers)?;
        let info = shard_info(shard_id, row)?;
        let xid = column(row, 3)?;
        tx.commit(Pipeline::default(), xid, &self.pool, errors::statement)
            .await?;
        Ok(info)
    }

    async fn renew_shard(&self, shard_id: i32, expected_range_id: i64, owner: &str) -> Result<i64> {
        let mut renew = Pipeline::default();
        renew.push(
            "UPDATE shards SET range_id = range_id + 1, owner = $3
             WHERE shard_id = $1 AND range_id = $2
             RETURNING range_id, txid_current()::text || '@' || pg_postmaster_start_time()::text",
            params![shard_id, expected_range_id, owner.to_string()],
        );
        let (tx, answers) = WriteTransaction::begin(self.client().await?, renew)
            .await
            .map_err(errors::statement)?;
        let Some(row) = answers.first().and_then(|rows| rows.first()) else {
            // Nothing changed: the transaction rolls back as it drops.
            drop(tx);
            let actual = self.get_shard(shard_id).await?.map_or(0, |s| s.range_id);
            return Err(Error::ShardOwnershipLost {
                shard_id,
                expected: expected_range_id,
                actual,
            });
        };
        let range_id = column(row, 0)?;
        let xid = column(row, 1)?;
        tx.commit(Pipeline::default(), xid, &self.pool, errors::statement)
            .await?;
        Ok(range_id)
    }

    async fn get_shard(&self, shard_id: i32) -> Result<Option<ShardInfo>> {
        let rows = self
            .query(
                "SELECT range_id, data, owner FROM shards WHERE shard_id = $1",
                &[&shard_id],
            )
            .await?;
        rows.first()
            .map(|row| shard_info(shard_id, row))
            .transpose()
    }

    async fn commit(&self, shard_id: i32, expected_range_id: i64, batch: ShardBatch) -> Result<()> {
        let client = self.client().await?;
        commit::commit_batch(client, &self.pool, shard_id, expected_range_id, batch).await
    }
}

const EXECUTION_COLUMNS: &str =
    "namespace_id, workflow_id, run_id, state, db_version, next_event_id";

#[async_trait]
impl VisibilityStore for PostgresStore {
    async fn index_attribute(
        &self,
        name: &str,
        value_type: crate::visibility::ValueType,
    ) -> Result<()> {
        let Some(sql) = visibility::attribute_index(name, value_type) else {
            return Ok(());
        };
        let client = self.client().await?;
        let answer = client.batch_execute(&sql).await;
        errors::release(client, answer.as_ref().err());
        answer.map_err(errors::statement)
    }

    async fn list_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&crate::visibility::Filter>,
        after: Option<&crate::visibility::VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<crate::visibility::VisibilityRow>> {
        let (sql, params) = visibility::list(namespace_id, filter, after, limit);
        let rows = self.query_once(&sql, params).await?;
        rows.iter().map(columns::listed_row).collect()
    }

    async fn count_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&crate::visibility::Filter>,
        group_by: Option<&crate::visibility::Attribute>,
    ) -> Result<crate::visibility::VisibilityCount> {
        let (sql, params) = visibility::count(namespace_id, filter, group_by);
        let rows = self.query_once(&sql, params).await?;
        columns::tally(&rows, group_by)
    }
}

#[async_trait]
impl ExecutionReader for PostgresStore {
    async fn get_execution(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRow>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions
             WHERE shard_id = $1 AND namespace_id = $2 AND workflow_id = $3 AND run_id = $4"
        );
        let rows = self
            .query(
                &sql,
                &[&shard_id, &key.namespace_id, &key.workflow_id, &key.run_id],
            )
            .await?;
        rows.first().map(execution_row).transpose()
    }

    async fn get_current_execution(
        &self,
        shard_id: i32,
        namespace_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecutionRow>> {
        let rows = self
            .query(
                "SELECT namespace_id, workflow_id, run_id, data FROM current_executions
                 WHERE shard_id = $1 AND namespace_id = $2 AND workflow_id = $3",
                &[&shard_id, &namespace_id, &workflow_id],
            )
            .await?;
        rows.first()
            .map(|row| {
                Ok(CurrentExecutionRow {
                    namespace_id: column(row, 0)?,
                    workflow_id: column(row, 1)?,
                    run_id: column(row, 2)?,
                    data: column(row, 3)?,
                })
            })
            .transpose()
    }

    async fn read_history(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        min_event_id: i64,
        max_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        const SQL: &str = "SELECT first_event_id, txn_id, events FROM history_node
             WHERE shard_id = $1 AND namespace_id = $2 AND workflow_id = $3 AND run_id = $4
               AND first_event_id >= $5 AND first_event_id < $6
             ORDER BY first_event_id";
        self.history_batches(SQL, shard_id, key, min_event_id, max_event_id)
            .await
    }

    async fn read_history_covering(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        from_event_id: i64,
        to_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        // The batch holding `from` starts at the greatest first event id at or before it.
        const SQL: &str = "SELECT first_event_id, txn_id, events FROM history_node
             WHERE shard_id = $1 AND namespace_id = $2 AND workflow_id = $3 AND run_id = $4
               AND first_event_id >= COALESCE(
                   (SELECT MAX(first_event_id) FROM history_node
                    WHERE shard_id = $1 AND namespace_id = $2 AND workflow_id = $3
                      AND run_id = $4 AND first_event_id <= $5), $5)
               AND first_event_id < $6
             ORDER BY first_event_id";
        self.history_batches(SQL, shard_id, key, from_event_id, to_event_id)
            .await
    }

    async fn list_transfer_tasks(
        &self,
        shard_id: i32,
        after_task_id: i64,
        limit: usize,
    ) -> Result<Vec<TransferTaskRow>> {
        let rows = self
            .query(
                "SELECT task_id, data FROM transfer_tasks
                 WHERE shard_id = $1 AND task_id > $2 ORDER BY task_id LIMIT $3",
                &[&shard_id, &after_task_id, &sql_limit(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TransferTaskRow {
                    task_id: column(row, 0)?,
                    data: column(row, 1)?,
                })
            })
            .collect()
    }

    async fn list_timer_tasks(
        &self,
        shard_id: i32,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<TimerTaskRow>> {
        let rows = self
            .query(
                "SELECT fire_time_ms, task_id, data FROM timer_tasks
                 WHERE shard_id = $1 AND fire_time_ms <= $2
                 ORDER BY fire_time_ms, task_id LIMIT $3",
                &[&shard_id, &until_ms, &sql_limit(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TimerTaskRow {
                    fire_time_ms: column(row, 0)?,
                    task_id: column(row, 1)?,
                    data: column(row, 2)?,
                })
            })
            .collect()
    }

    async fn list_executions(&self, shard_id: i32, limit: usize) -> Result<Vec<ExecutionRow>> {
        let sql = format!(
            "SELECT {EXECUTION_COLUMNS} FROM executions WHERE shard_id = $1
             ORDER BY namespace_id, workflow_id, run_id LIMIT $2"
        );
        let rows = self.query(&sql, &[&shard_id, &sql_limit(limit)]).await?;
        rows.iter().map(execution_row).collect()
    }
}
