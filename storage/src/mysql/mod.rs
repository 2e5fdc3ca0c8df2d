//! The MySQL backend (MySQL 8 semantics; tested on MariaDB 10.11, so its SQL is what both
//! accept).
//!
//! Calls share a `mysql_async` connection pool; each shard's commit is one transaction of its
//! own, so commits of different shards run in parallel over the pool. A commit first updates
//! the shard's row on the condition that its `range_id` is the expected one (the fence; it also
//! marks the row for `settle`), then locks and checks the rows its conditions name, then writes.
//! The row's lock is held to the end: acquiring the shard (which updates that row) waits for the
//! commit in flight and fences every later one.
//!
//! Transactions run at READ COMMITTED, chosen on purpose (every session sets it): conditions
//! are checked with locking reads, which see the latest committed rows at any level, and READ
//! COMMITTED takes no gap locks, so two transactions inserting different new rows never
//! deadlock over a gap. (With binary logging, MySQL then needs `binlog_format=ROW`, its
//! default.)
//!
//! Failures: a call that could not reach the server or failed before its `COMMIT` was sent
//! wrote nothing and returns [`Error::Unavailable`]. When the connection is lost after a shard
//! commit's `COMMIT` was sent, the outcome is settled by reading the shard's row (`settle`):
//! `Ok`, `Unavailable`, or [`Error::Backend`] while it cannot be learnt (the shard then starts
//! again from what the store holds); other writes report such a loss as `Backend`. A commit is
//! never retried blindly; only one the server rolled back as a deadlock victim runs again.

mod error;
mod executions;
mod options;
mod queues;
mod schema;
mod settle;
mod visibility;

use std::time::Duration;

use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, Params, Pool, Row, Transaction, TxOpts, from_row_opt};

use crate::{Error, Result};
use error::{Sent, TxError, TxResult, code, server_code};
pub use options::{DEFAULT_MAX_CONNS, MysqlOptions, OptionError, TlsOptions};
pub use schema::{
    SchemaVersion, create_database, current_version, schema_version, setup_schema, update_schema,
};

/// How long a call waits for a pooled connection (all busy, or the server slow to accept)
/// before it fails with [`Error::Unavailable`].
const CONNECTION_WAIT: Duration = Duration::from_secs(10);

/// How many times a transaction runs when the server keeps choosing it as a deadlock victim.
const DEADLOCK_ATTEMPTS: usize = 4;

/// A store kept in a MySQL database.
///
/// Cheap to share behind an `Arc`; dropping it closes the pool's connections.
pub struct MysqlStore {
    pool: Pool,
    /// `host:port/database`, for messages.
    target: String,
}

impl MysqlStore {
    /// Opens a store on the database of `options`. Refuses a database without a schema or
    /// with an older one, naming the command that fixes it (`sundial schema setup` / `sundial
    /// schema update`), and one written by a newer Sundial.
    pub async fn open(options: &MysqlOptions) -> Result<Self> {
        let opts = options
            .to_opts(true)
            .map_err(|e| Error::Backend(e.to_string()))?;
        let store = MysqlStore {
            pool: Pool::new(opts),
            target: options.target(),
        };
        let mut conn = store.conn().await?;
        let stored = schema::stored_version(&mut conn)
            .await
            .map_err(|e| error::classify(e, Sent::BeforeCommit, &store.target))?;
        drop(conn);
        schema::check_serving(&store.target, stored)?;
        Ok(store)
    }

    /// Opens a store for development, as Temporal's auto-setup image does: creates the
    /// database when it is missing and installs or updates the schema first.
    pub async fn open_with_auto_setup(options: &MysqlOptions) -> Result<Self> {
        schema::create_database(options).await?;
        if schema::schema_version(options).await?.stored.is_none() {
            schema::setup_schema(options).await?;
        } else {
            schema::update_schema(options).await?;
        }
        Self::open(options).await
    }

    /// A pooled connection.
    async fn conn(&self) -> Result<Conn> {
        match tokio::time::timeout(CONNECTION_WAIT, self.pool.get_conn()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.unreachable(e)),
            Err(_) => Err(self.no_connection()),
        }
    }

    /// The error of a connection that could not be had.
    fn unreachable(&self, e: mysql_async::Error) -> Error {
        if server_code(&e) == Some(code::NO_SUCH_DATABASE) {
            return schema::missing_database(&self.target);
        }
        error::classify(e, Sent::BeforeCommit, &self.target)
    }

    fn no_connection(&self) -> Error {
        Error::Unavailable(format!(
            "mysql {}: no connection within {CONNECTION_WAIT:?}",
            self.target
        ))
    }

    /// The rows `sql` selects, outside any transaction.
    async fn select<T: FromRow>(
        &self,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<Vec<T>> {
        let mut conn = self.conn().await?;
        rows(&mut conn, sql, params)
            .await
            .map_err(|e| e.into_error(Sent::BeforeCommit, &self.target))
    }

    /// The first row `sql` selects, outside any transaction.
    async fn select_first<T: FromRow>(
        &self,
        sql: &str,
        params: impl Into<Params> + Send,
    ) -> Result<Option<T>> {
        let mut conn = self.conn().await?;
        first_row(&mut conn, sql, params)
            .await
            .map_err(|e| e.into_error(Sent::BeforeCommit, &self.target))
    }

    /// Starts a transaction on a pooled connection.
    async fn begin(&self) -> Result<Transaction<'static>> {
        let started = self.pool.start_transaction(TxOpts::default());
        match tokio::time::timeout(CONNECTION_WAIT, started).await {
            Ok(Ok(tx)) => Ok(tx),
            Ok(Err(e)) => Err(self.unreachable(e)),
            Err(_) => Err(self.no_connection()),
        }
    }

    /// Runs `body` in a transaction of its own and commits it. `body` gets the transaction and
    /// hands it back with its outcome. A refusal of `body` rolls the transaction back and is
    /// the answer; a transaction the server rolled back as a deadlock victim runs again
    /// (nothing of it was written). A `COMMIT` whose answer was lost is an unknown outcome
    /// ([`Error::Backend`]).
    async fn transaction<T, F, Fut>(&self, body: F) -> Result<T>
    where
        F: FnMut(Transaction<'static>) -> Fut,
        Fut: Future<Output = (Transaction<'static>, TxResult<T>)>,
    {
        match self.run_transaction(body).await {
            Ended::Committed(value) => Ok(value),
            Ended::Failed(e) | Ended::Unknown(_, e) => Err(e),
        }
    }

    /// [`transaction`](Self::transaction), telling a lost `COMMIT` apart with what `body`
    /// answered, so the caller can settle it.
    async fn run_transaction<T, F, Fut>(&self, mut body: F) -> Ended<T>
    where
        F: FnMut(Transaction<'static>) -> Fut,
        Fut: Future<Output = (Transaction<'static>, TxResult<T>)>,
    {
        let mut attempt = 1;
        loop {
            let tx = match self.begin().await {
                Ok(tx) => tx,
                Err(e) => return Ended::Failed(e),
            };
            let (tx, outcome) = body(tx).await;
            match outcome {
                Ok(value) => {
                    return match tx.commit().await {
                        Ok(()) => Ended::Committed(value),
                        Err(e) if error::connection_lost(&e) => {
                            Ended::Unknown(value, error::classify(e, Sent::Commit, &self.target))
                        }
                        Err(e) => Ended::Failed(error::classify(e, Sent::Commit, &self.target)),
                    };
                }
                Err(TxError::Db(e))
                    if server_code(&e) == Some(code::DEADLOCK) && attempt < DEADLOCK_ATTEMPTS =>
                {
                    attempt += 1;
                }
                Err(e) => {
                    // Best effort: a broken connection rolls back on the server anyway.
                    let _ = tx.rollback().await;
                    return Ended::Failed(e.into_error(Sent::BeforeCommit, &self.target));
                }
            }
        }
    }
}

/// How a transaction ended.
enum Ended<T> {
    /// It committed; what its body answered.
    Committed(T),
    /// It did not commit.
    Failed(Error),
    /// Its `COMMIT` was sent and the answer lost: what its body answered, and the error that
    /// says the outcome is unknown.
    Unknown(T, Error),
}

impl Drop for MysqlStore {
    fn drop(&mut self) {
        // Say goodbye to the server where a runtime can carry it; otherwise the sockets just
        // close.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(self.pool.clone().disconnect());
        }
    }
}

/// The rows `sql` selects on `q` (a connection or a transaction), decoded.
async fn rows<T: FromRow>(
    q: &mut impl Queryable,
    sql: &str,
    params: impl Into<Params> + Send,
) -> TxResult<Vec<T>> {
    let rows: Vec<Row> = q.exec(sql, params).await?;
    Ok(rows
        .into_iter()
        .map(from_row_opt)
        .collect::<std::result::Result<_, _>>()?)
}

/// The first row `sql` selects on `q`, decoded.
async fn first_row<T: FromRow>(
    q: &mut impl Queryable,
    sql: &str,
    params: impl Into<Params> + Send,
) -> TxResult<Option<T>> {
    let row: Option<Row> = q.exec_first(sql, params).await?;
    Ok(row.map(from_row_opt).transpose()?)
}

/// A `usize` limit as an SQL `LIMIT`.
fn sql_limit(limit: usize) -> u64 {
    u64::try_from(limit).unwrap_or(u64::MAX)
}

/// Runs `insert`; a duplicate key is the refusal `taken` instead of an error.
async fn insert_new(
    tx: &mut Transaction<'_>,
    insert: &str,
    params: impl Into<Params> + Send,
    taken: impl FnOnce() -> Error,
) -> TxResult<()> {
    match tx.exec_drop(insert, params).await {
        Err(e) if server_code(&e) == Some(code::DUPLICATE_KEY) => Err(TxError::Refused(taken())),
        other => Ok(other?),
    }
}
