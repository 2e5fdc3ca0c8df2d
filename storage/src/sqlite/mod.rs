//! The SQLite backend: the embedded default store, one file per node.
//!
//! Every call runs on dedicated threads that own the connections (see `worker`): one writer
//! thread, and for a file database a few reader threads (WAL lets them read beside the writer
//! and see every commit that returned before their read started). A shard's
//! [`ShardStore::commit`] is one `BEGIN IMMEDIATE` transaction that checks the shard's
//! `range_id` and every row condition before it writes anything, and rolls back on any failure.
//!
//! A file database runs with `journal_mode=WAL` and `synchronous=FULL`: a commit that returned
//! `Ok` survives a process kill or a power loss.

mod queues;
mod schema;
mod visibility;
mod worker;

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use crate::visibility::columns::{self, Positional};
use crate::{
    CurrentExecutionRow, Error, ExecutionKey, ExecutionReader, ExecutionRow, HistoryBatch, Result,
    ShardBatch, ShardInfo, ShardStore, TimerTaskRow, TransferTaskRow, VisibilityStore,
};
use rusqlite::types::Value as Sql;
use worker::Pool;

/// Reader threads of a file database.
const READER_THREADS: usize = 4;

/// The schema version this build writes; [`SqliteStore::open`] migrates a file to it.
pub fn current_schema_version() -> i64 {
    schema::current_version()
}

/// The schema version stored in the existing database file at `path`, `None` when the file
/// holds no Sundial schema (`sundial schema version`). Creates and migrates nothing.
pub fn stored_schema_version(path: &Path) -> Result<Option<i64>> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
        [],
        |row| row.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let version = conn
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()?;
    Ok(Some(version.unwrap_or(0)))
}

/// The writer connection of a file database, its schema brought up to date. The processes of
/// one deployment open the file at once: a connection that finds another one setting the file
/// up (switching it to WAL, migrating) waits for it, and where SQLite answers "database is
/// locked" at once instead of waiting (a journal-mode switch does), it tries again until
/// [`schema::SETUP_BUSY_TIMEOUT`] has passed.
fn open_writer(path: &Path) -> Result<Connection> {
    let deadline = std::time::Instant::now() + schema::SETUP_BUSY_TIMEOUT;
    loop {
        let attempt = (|| {
            let mut conn = Connection::open(path)?;
            schema::configure_file_writer(&conn)?;
            conn.busy_timeout(schema::SETUP_BUSY_TIMEOUT)?;
            schema::migrate(&mut conn)?;
            conn.busy_timeout(schema::BUSY_TIMEOUT)?;
            Ok(conn)
        })();
        match attempt {
            // `From<rusqlite::Error>` keeps SQLite's text: SQLITE_BUSY reads so.
            Err(Error::Backend(message))
                if message.ends_with("database is locked")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// A store kept in a SQLite database (a file, or memory for tests).
///
/// Cheap to share behind an `Arc`; dropping the last handle lets the connection threads finish
/// the calls already queued and close their connections.
pub struct SqliteStore {
    writer: Pool,
    /// `None` for an in-memory database, whose only connection is the writer's.
    readers: Option<Pool>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`, in WAL mode with
    /// `synchronous=FULL`, and brings its schema up to date.
    ///
    /// Does blocking file I/O: call it at startup or from `spawn_blocking`, not from a task.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = open_writer(path)?;
        let writer = Pool::spawn("sqlite-writer", vec![conn])?;
        let readers = (0..READER_THREADS)
            .map(|_| {
                let conn = Connection::open(path)?;
                schema::configure_file_reader(&conn)?;
                Ok(conn)
            })
            .collect::<Result<Vec<_>>>()?;
        let readers = Pool::spawn("sqlite-reader", readers)?;
        Ok(Self {
            writer,
            readers: Some(readers),
        })
    }

    /// A fresh database that lives in this process only (tests, `start-dev` without a file).
    pub fn open_in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory()?;
        schema::configure_any(&conn)?;
        schema::migrate(&mut conn)?;
        Ok(Self {
            writer: Pool::spawn("sqlite-memory", vec![conn])?,
            readers: None,
        })
    }

    /// Runs `f` on the writer connection.
    async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.writer.run(f).await
    }

    /// Runs `f` on a reader connection (the writer's for an in-memory database).
    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.readers.as_ref().unwrap_or(&self.writer).run(f).await
    }

    /// History batches of a run selected by `sql`, whose parameters are the shard, the run's
    /// key and two event ids (`?5`, `?6`); nothing when `from >= to`.
    async fn history_batches(
        &self,
        sql: &'static str,
        shard_id: i32,
        key: &ExecutionKey,
        from: i64,
        to: i64,
    ) -> Result<Vec<HistoryBatch>> {
        if from >= to {
            return Ok(Vec::new());
        }
        let key = key.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let params = params![
                shard_id,
                key.namespace_id,
                key.workflow_id,
                key.run_id,
                from,
                to
            ];
            let rows = stmt.query_map(params, |row| {
                Ok(HistoryBatch {
                    first_event_id: row.get(0)?,
                    txn_id: row.get(1)?,
                    events: row.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::Backend(format!("sqlite: {e}"))
    }
}

/// Starts a write transaction that takes the database's write lock up front.
fn begin(conn: &mut Connection) -> Result<Transaction<'_>> {
    Ok(conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
}

/// A `usize` limit as an SQL `LIMIT`.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

fn execution_row(row: &Row<'_>) -> rusqlite::Result<ExecutionRow> {
    Ok(ExecutionRow {
        key: ExecutionKey {
            namespace_id: row.get(0)?,
            workflow_id: row.get(1)?,
            run_id: row.get(2)?,
        },
        state: row.get(3)?,
        db_version: row.get(4)?,
        next_event_id: row.get(5)?,
    })
}

const EXECUTION_COLUMNS: &str =
    "namespace_id, workflow_id, run_id, state, db_version, next_event_id";

/// Checks every condition of `batch` inside `tx`, before anything is written, so a batch that
/// touches the same row twice is judged against the state before the batch (as in memory).
fn check_conditions(tx: &Connection, shard_id: i32, batch: &ShardBatch) -> Result<()> {
    let mut current = tx.prepare_cached(
        "SELECT run_id FROM current_executions
         WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3",
    )?;
    for w in &batch.current_executions {
        let stored: Option<String> = current
            .query_row(
                params![shard_id, w.row.namespace_id, w.row.workflow_id],
                |row| row.get(0),
            )
            .optional()?;
        if stored.as_deref() != w.expected_run_id.as_deref() {
            return Err(Error::ConditionFailed(format!(
                "current run of {}: expected {:?}, found {:?}",
                w.row.workflow_id, w.expected_run_id, stored
            )));
        }
    }
    let mut execution = tx.prepare_cached(
        "SELECT db_version FROM executions
         WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4",
    )?;
    for w in &batch.executions {
        let k = &w.row.key;
        let stored: Option<i64> = execution
            .query_row(
                params![shard_id, k.namespace_id, k.workflow_id, k.run_id],
                |row| row.get(0),
            )
            .optional()?;
        if stored != w.expected_db_version {
            return Err(Error::ConditionFailed(format!(
                "execution {}/{}: expected db_version {:?}, found {:?}",
                k.workflow_id, k.run_id, w.expected_db_version, stored
            )));
        }
    }
    Ok(())
}

/// Writes every row of `batch` inside `tx` (conditions already checked).
fn apply_batch(tx: &Connection, shard_id: i32, batch: ShardBatch) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO current_executions
         (shard_id, namespace_id, workflow_id, run_id, data) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for w in batch.current_executions {
        let r = w.row;
        stmt.execute(params![
            shard_id,
            r.namespace_id,
            r.workflow_id,
            r.run_id,
            r.data
        ])?;
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO executions
         (shard_id, namespace_id, workflow_id, run_id, state, db_version, next_event_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for w in batch.executions {
        let r = w.row;
        stmt.execute(params![
            shard_id,
            r.key.namespace_id,
            r.key.workflow_id,
            r.key.run_id,
            r.state,
            r.db_version,
            r.next_event_id
        ])?;
    }
    // Same first event id: the write with the higher (or equal) txn_id wins.
    let mut stmt = tx.prepare_cached(
        "INSERT INTO history_node
         (shard_id, namespace_id, workflow_id, run_id, first_event_id, txn_id, events)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (shard_id, namespace_id, workflow_id, run_id, first_event_id)
         DO UPDATE SET txn_id = excluded.txn_id, events = excluded.events
         WHERE excluded.txn_id >= history_node.txn_id",
    )?;
    for h in batch.history {
        let (k, b) = (h.key, h.batch);
        stmt.execute(params![
            shard_id,
            k.namespace_id,
            k.workflow_id,
            k.run_id,
            b.first_event_id,
            b.txn_id,
            b.events
        ])?;
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO transfer_tasks (shard_id, task_id, data) VALUES (?1, ?2, ?3)",
    )?;
    for t in batch.transfer_tasks {
        stmt.execute(params![shard_id, t.task_id, t.data])?;
    }
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO timer_tasks (shard_id, fire_time_ms, task_id, data)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for t in batch.timer_tasks {
        stmt.execute(params![shard_id, t.fire_time_ms, t.task_id, t.data])?;
    }
    let mut stmt =
        tx.prepare_cached("DELETE FROM transfer_tasks WHERE shard_id = ?1 AND task_id = ?2")?;
    for id in batch.delete_transfer_tasks {
        stmt.execute(params![shard_id, id])?;
    }
    let mut stmt = tx.prepare_cached(
        "DELETE FROM timer_tasks WHERE shard_id = ?1 AND fire_time_ms = ?2 AND task_id = ?3",
    )?;
    for (fire, id) in batch.delete_timer_tasks {
        stmt.execute(params![shard_id, fire, id])?;
    }
    if let Some(data) = batch.shard_data {
        tx.execute(
            "UPDATE shards SET data = ?2 WHERE shard_id = ?1",
            params![shard_id, data],
        )?;
    }
    let mut stmt = tx.prepare_cached(visibility::UPSERT)?;
    for row in &batch.visibility {
        stmt.execute(rusqlite::params_from_iter(visibility::upsert_params(row)))?;
    }
    for key in batch.delete_executions {
        tx.prepare_cached(visibility::DELETE)?
            .execute(params![key.namespace_id, key.run_id])?;
        let k = params![shard_id, key.namespace_id, key.workflow_id, key.run_id];
        tx.execute(
            "DELETE FROM executions WHERE shard_id = ?1 AND namespace_id = ?2 \
             AND workflow_id = ?3 AND run_id = ?4",
            k,
        )?;
        tx.execute(
            "DELETE FROM history_node WHERE shard_id = ?1 AND namespace_id = ?2 \
             AND workflow_id = ?3 AND run_id = ?4",
            k,
        )?;
        tx.execute(
            "DELETE FROM current_executions WHERE shard_id = ?1 AND namespace_id = ?2 \
             AND workflow_id = ?3 AND run_id = ?4",
            k,
        )?;
    }
    Ok(())
}

/// A shard's row as read by `SELECT range_id, data, owner`.
fn shard_info(shard_id: i32, row: &Row<'_>) -> rusqlite::Result<ShardInfo> {
    Ok(ShardInfo {
        shard_id,
        range_id: row.get(0)?,
        data: row.get(1)?,
        owner: row.get(2)?,
    })
}

/// The shard's `range_id` in the store (0 for a shard never acquired).
fn range_id_of(conn: &Connection, shard_id: i32) -> Result<i64> {
    Ok(conn
        .query_row(
            "SELECT range_id FROM shards WHERE shard_id = ?1",
            [shard_id],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

#[async_trait]
impl ShardStore for SqliteStore {
    async fn acquire_shard(&self, shard_id: i32, owner: &str) -> Result<ShardInfo> {
        let owner = owner.to_string();
        self.write(move |conn| {
            let tx = begin(conn)?;
            let info = tx.query_row(
                "INSERT INTO shards (shard_id, range_id, data, owner) VALUES (?1, 1, x'', ?2)
                 ON CONFLICT (shard_id) DO UPDATE SET range_id = range_id + 1, owner = ?2
                 RETURNING range_id, data, owner",
                params![shard_id, owner],
                |row| shard_info(shard_id, row),
            )?;
            tx.commit()?;
            Ok(info)
        })
        .await
    }

    async fn renew_shard(&self, shard_id: i32, expected_range_id: i64, owner: &str) -> Result<i64> {
        let owner = owner.to_string();
        self.write(move |conn| {
            let tx = begin(conn)?;
            let renewed = tx
                .query_row(
                    "UPDATE shards SET range_id = range_id + 1, owner = ?3
                     WHERE shard_id = ?1 AND range_id = ?2 RETURNING range_id",
                    params![shard_id, expected_range_id, owner],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(range_id) = renewed else {
                return Err(Error::ShardOwnershipLost {
                    shard_id,
                    expected: expected_range_id,
                    actual: range_id_of(&tx, shard_id)?,
                });
            };
            tx.commit()?;
            Ok(range_id)
        })
        .await
    }

    async fn get_shard(&self, shard_id: i32) -> Result<Option<ShardInfo>> {
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT range_id, data, owner FROM shards WHERE shard_id = ?1",
                    [shard_id],
                    |row| shard_info(shard_id, row),
                )
                .optional()?)
        })
        .await
    }

    async fn commit(&self, shard_id: i32, expected_range_id: i64, batch: ShardBatch) -> Result<()> {
        // Group commit across shards: this batch shares one transaction (in its own savepoint,
        // rolled back alone on any failure) with the other writes waiting for the writer.
        self.writer
            .run_grouped(move |tx| {
                let actual = range_id_of(tx, shard_id)?;
                if actual != expected_range_id {
                    return Err(Error::ShardOwnershipLost {
                        shard_id,
                        expected: expected_range_id,
                        actual,
                    });
                }
                check_conditions(tx, shard_id, &batch)?;
                apply_batch(tx, shard_id, batch)?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl VisibilityStore for SqliteStore {
    async fn index_attribute(
        &self,
        name: &str,
        value_type: crate::visibility::ValueType,
    ) -> Result<()> {
        let Some(sql) = visibility::attribute_index(name, value_type) else {
            return Ok(());
        };
        self.write(move |conn| Ok(conn.execute_batch(&sql)?)).await
    }

    async fn list_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&crate::visibility::Filter>,
        after: Option<&crate::visibility::VisibilityCursor>,
        limit: usize,
    ) -> Result<Vec<crate::visibility::VisibilityRow>> {
        let (sql, parameters) = Positional::<Sql>::list(namespace_id, filter, after, limit);
        self.read(move |conn| {
            let mut statement = conn.prepare(&sql)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(parameters), |row| {
                    columns::listed_row(row)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn count_visibility(
        &self,
        namespace_id: &str,
        filter: Option<&crate::visibility::Filter>,
        group_by: Option<&crate::visibility::Attribute>,
    ) -> Result<crate::visibility::VisibilityCount> {
        let (sql, parameters) = Positional::<Sql>::count(namespace_id, filter, group_by);
        let group_by = group_by.cloned();
        self.read(move |conn| {
            let mut statement = conn.prepare(&sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(parameters))?;
            let mut count = crate::visibility::VisibilityCount::default();
            while let Some(row) = rows.next()? {
                columns::count_row(&mut count, row, group_by.as_ref())?;
            }
            count.groups.sort();
            Ok(count)
        })
        .await
    }
}

#[async_trait]
impl ExecutionReader for SqliteStore {
    async fn get_execution(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
    ) -> Result<Option<ExecutionRow>> {
        let key = key.clone();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions
                 WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4"
            );
            Ok(conn
                .prepare_cached(&sql)?
                .query_row(
                    params![shard_id, key.namespace_id, key.workflow_id, key.run_id],
                    execution_row,
                )
                .optional()?)
        })
        .await
    }

    async fn get_current_execution(
        &self,
        shard_id: i32,
        namespace_id: &str,
        workflow_id: &str,
    ) -> Result<Option<CurrentExecutionRow>> {
        let (namespace_id, workflow_id) = (namespace_id.to_string(), workflow_id.to_string());
        self.read(move |conn| {
            Ok(conn
                .prepare_cached(
                    "SELECT namespace_id, workflow_id, run_id, data FROM current_executions
                     WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3",
                )?
                .query_row(params![shard_id, namespace_id, workflow_id], |row| {
                    Ok(CurrentExecutionRow {
                        namespace_id: row.get(0)?,
                        workflow_id: row.get(1)?,
                        run_id: row.get(2)?,
                        data: row.get(3)?,
                    })
                })
                .optional()?)
        })
        .await
    }

    async fn read_history(
        &self,
        shard_id: i32,
        key: &ExecutionKey,
        min_event_id: i64,
        max_event_id: i64,
    ) -> Result<Vec<HistoryBatch>> {
        const SQL: &str = "SELECT first_event_id, txn_id, events FROM history_node
             WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4
               AND first_event_id >= ?5 AND first_event_id < ?6
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
             WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3 AND run_id = ?4
               AND first_event_id >= COALESCE(
                   (SELECT MAX(first_event_id) FROM history_node
                    WHERE shard_id = ?1 AND namespace_id = ?2 AND workflow_id = ?3
                      AND run_id = ?4 AND first_event_id <= ?5), ?5)
               AND first_event_id < ?6
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
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT task_id, data FROM transfer_tasks
                 WHERE shard_id = ?1 AND task_id > ?2 ORDER BY task_id LIMIT ?3",
            )?;
            let rows =
                stmt.query_map(params![shard_id, after_task_id, sql_limit(limit)], |row| {
                    Ok(TransferTaskRow {
                        task_id: row.get(0)?,
                        data: row.get(1)?,
                    })
                })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn list_timer_tasks(
        &self,
        shard_id: i32,
        until_ms: i64,
        limit: usize,
    ) -> Result<Vec<TimerTaskRow>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT fire_time_ms, task_id, data FROM timer_tasks
                 WHERE shard_id = ?1 AND fire_time_ms <= ?2
                 ORDER BY fire_time_ms, task_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![shard_id, until_ms, sql_limit(limit)], |row| {
                Ok(TimerTaskRow {
                    fire_time_ms: row.get(0)?,
                    task_id: row.get(1)?,
                    data: row.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn list_executions(&self, shard_id: i32, limit: usize) -> Result<Vec<ExecutionRow>> {
        self.read(move |conn| {
            let sql = format!(
                "SELECT {EXECUTION_COLUMNS} FROM executions WHERE shard_id = ?1
                 ORDER BY namespace_id, workflow_id, run_id LIMIT ?2"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![shard_id, sql_limit(limit)], execution_row)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }
}
