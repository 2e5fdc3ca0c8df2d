//! The PostgreSQL schema, its migrations, and the schema commands a CLI runs
//! (`sundial schema setup|update|version`), as Temporal's `temporal-sql-tool` does.
//!
//! `schema_version` holds one row: how many entries of [`MIGRATIONS`] have been applied. The
//! commands run their steps in one transaction each (PostgreSQL's DDL is transactional) under
//! an advisory lock, so two servers starting with auto-setup do not race. Add a migration by
//! appending to [`MIGRATIONS`]; never edit a shipped one.

use deadpool_postgres::tokio_postgres::error::SqlState;
use deadpool_postgres::tokio_postgres::{self, Client, Transaction};

use super::PostgresOptions;
use super::errors;
use crate::{Error, Result};

/// The schema, one step per entry. Text keys are `COLLATE "C"`, so `ORDER BY` is bytewise like
/// Rust's string order whatever the database's locale; blobs are `bytea`, opaque to the store.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE shards (
        shard_id integer PRIMARY KEY,
        range_id bigint  NOT NULL,
        data     bytea   NOT NULL
    );
    CREATE TABLE executions (
        shard_id      integer NOT NULL,
        namespace_id  text    COLLATE "C" NOT NULL,
        workflow_id   text    COLLATE "C" NOT NULL,
        run_id        text    COLLATE "C" NOT NULL,
        state         bytea   NOT NULL,
        db_version    bigint  NOT NULL,
        next_event_id bigint  NOT NULL,
        PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id)
    );
    CREATE TABLE current_executions (
        shard_id     integer NOT NULL,
        namespace_id text    COLLATE "C" NOT NULL,
        workflow_id  text    COLLATE "C" NOT NULL,
        run_id       text    COLLATE "C" NOT NULL,
        data         bytea   NOT NULL,
        PRIMARY KEY (shard_id, namespace_id, workflow_id)
    );
    CREATE TABLE history_node (
        shard_id       integer NOT NULL,
        namespace_id   text    COLLATE "C" NOT NULL,
        workflow_id    text    COLLATE "C" NOT NULL,
        run_id         text    COLLATE "C" NOT NULL,
        first_event_id bigint  NOT NULL,
        txn_id         bigint  NOT NULL,
        events         bytea   NOT NULL,
        PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id, first_event_id)
    );
    CREATE TABLE transfer_tasks (
        shard_id integer NOT NULL,
        task_id  bigint  NOT NULL,
        data     bytea   NOT NULL,
        PRIMARY KEY (shard_id, task_id)
    );
    CREATE TABLE timer_tasks (
        shard_id     integer NOT NULL,
        fire_time_ms bigint  NOT NULL,
        task_id      bigint  NOT NULL,
        data         bytea   NOT NULL,
        PRIMARY KEY (shard_id, fire_time_ms, task_id)
    );
    CREATE TABLE namespaces (
        id                   text   COLLATE "C" PRIMARY KEY,
        name                 text   COLLATE "C" NOT NULL UNIQUE,
        notification_version bigint NOT NULL,
        data                 bytea  NOT NULL
    );
    CREATE TABLE task_queues (
        namespace_id text    COLLATE "C" NOT NULL,
        name         text    COLLATE "C" NOT NULL,
        task_type    integer NOT NULL,
        partition    integer NOT NULL,
        range_id     bigint  NOT NULL,
        PRIMARY KEY (namespace_id, name, task_type, partition)
    );
    CREATE TABLE tasks (
        namespace_id text    COLLATE "C" NOT NULL,
        name         text    COLLATE "C" NOT NULL,
        task_type    integer NOT NULL,
        partition    integer NOT NULL,
        task_id      bigint  NOT NULL,
        data         bytea   NOT NULL,
        PRIMARY KEY (namespace_id, name, task_type, partition, task_id)
    );
    "#,
];

/// The schema version this build reads and writes: the number of migrations.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Key of the advisory lock the schema commands hold while they look and change.
const SCHEMA_LOCK: i64 = 0x0053_554e_4449_414c; // "SUNDIAL"

/// The maintenance database [`create_database`] connects to when the configured one is missing.
const MAINTENANCE_DATABASE: &str = "postgres";

/// Where a database's schema stands against this build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// No `schema_version` table: `sundial schema setup` creates the schema.
    Empty,
    /// Set up at this version, older than [`CURRENT_VERSION`]: `sundial schema update`.
    Older(i64),
    /// At [`CURRENT_VERSION`].
    Current,
    /// Written by a newer Sundial (this version).
    Newer(i64),
}

impl SchemaState {
    fn of(version: Option<i64>) -> Self {
        match version {
            None => Self::Empty,
            Some(v) if v < CURRENT_VERSION => Self::Older(v),
            Some(v) if v == CURRENT_VERSION => Self::Current,
            Some(v) => Self::Newer(v),
        }
    }

    /// `Ok` when a store may open the database; otherwise the error naming the command that
    /// fixes it.
    pub(super) fn require_current(self, options: &PostgresOptions) -> Result<()> {
        let at = options.describe();
        match self {
            Self::Current => Ok(()),
            Self::Empty => Err(Error::Backend(format!(
                "{at} has no Sundial schema: run `sundial schema setup` (or start with \
                 --auto-setup for development)"
            ))),
            Self::Older(v) => Err(Error::Backend(format!(
                "{at} has schema version {v}, older than this build's {CURRENT_VERSION}: run \
                 `sundial schema update`"
            ))),
            Self::Newer(v) => Err(Error::Backend(format!(
                "{at} has schema version {v}, newer than this build's {CURRENT_VERSION}: run a \
                 newer Sundial"
            ))),
        }
    }
}

/// One connection to `database`, its driver task spawned on the current runtime; the outer
/// error refuses the options, the inner one is the driver's.
async fn try_connect(
    options: &PostgresOptions,
    database: &str,
) -> Result<std::result::Result<Client, tokio_postgres::Error>> {
    let (config, tls) = options.connection(database)?;
    Ok(config.connect(tls).await.map(|(client, connection)| {
        tokio::spawn(connection);
        client
    }))
}

/// A failure to connect, naming the server and the cause.
fn cannot_connect(options: &PostgresOptions, e: &tokio_postgres::Error) -> Error {
    Error::Unavailable(format!(
        "cannot connect to {}: {}",
        options.describe(),
        errors::connect_cause(e)
    ))
}

/// One connection to `database`, its driver task spawned on the current runtime.
pub(super) async fn connect(options: &PostgresOptions, database: &str) -> Result<Client> {
    try_connect(options, database)
        .await?
        .map_err(|e| cannot_connect(options, &e))
}

/// Creates the configured database unless it exists. Returns whether it created it. The
/// user needs the `CREATEDB` privilege only when the database is missing.
pub async fn create_database(options: &PostgresOptions) -> Result<bool> {
    match try_connect(options, &options.database_name).await? {
        Ok(_) => return Ok(false),
        Err(e) if e.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(e) => return Err(cannot_connect(options, &e)),
    }
    let client = connect(options, MAINTENANCE_DATABASE).await.map_err(|e| {
        Error::Backend(format!(
            "{}: the database does not exist, and creating it needs the maintenance database \
             {MAINTENANCE_DATABASE:?}: {e}",
            options.describe()
        ))
    })?;
    let sql = format!(
        "CREATE DATABASE {}",
        quote_identifier(&options.database_name)
    );
    match client.batch_execute(&sql).await {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_DATABASE) => Ok(false),
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            Err(Error::Backend(format!(
                "{}: the database does not exist and user {:?} may not create it ({}); ask an \
                 administrator to create it",
                options.describe(),
                options.user,
                errors::describe(&e)
            )))
        }
        Err(e) => Err(Error::Backend(format!(
            "{}: creating the database failed: {}",
            options.describe(),
            errors::describe(&e)
        ))),
    }
}

/// `"name"` with embedded quotes doubled: an SQL identifier.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The schema version stored in the database, `None` when it has no Sundial schema.
pub async fn version(options: &PostgresOptions) -> Result<Option<i64>> {
    let client = connect(options, &options.database_name).await?;
    read_version(&client).await
}

/// Where the database's schema stands against this build.
pub async fn state(options: &PostgresOptions) -> Result<SchemaState> {
    Ok(SchemaState::of(version(options).await?))
}

/// Creates the schema in a database that has none (`sundial schema setup`). Refuses a
/// database that already has one.
pub async fn setup(options: &PostgresOptions) -> Result<()> {
    let mut client = connect(options, &options.database_name).await?;
    let tx = locked(&mut client).await?;
    match SchemaState::of(read_version(&tx).await?) {
        SchemaState::Empty => {}
        SchemaState::Current => {
            return Err(Error::Backend(format!(
                "{} already has Sundial's schema (version {CURRENT_VERSION}): nothing to set up",
                options.describe()
            )));
        }
        SchemaState::Older(v) | SchemaState::Newer(v) => {
            return Err(Error::Backend(format!(
                "{} already has Sundial's schema (version {v}): use `sundial schema update`",
                options.describe()
            )));
        }
    }
    tx.batch_execute("CREATE TABLE schema_version (version bigint NOT NULL)")
        .await
        .map_err(migration_failed)?;
    migrate(&tx, 0).await?;
    tx.commit().await.map_err(migration_failed)
}

/// Brings an older schema up to [`CURRENT_VERSION`] (`sundial schema update`) and returns the
/// version it started from. A current schema is left alone; a missing or newer one is refused.
pub async fn update(options: &PostgresOptions) -> Result<i64> {
    let mut client = connect(options, &options.database_name).await?;
    let tx = locked(&mut client).await?;
    let from = match SchemaState::of(read_version(&tx).await?) {
        SchemaState::Older(v) => v,
        SchemaState::Current => return Ok(CURRENT_VERSION),
        state @ (SchemaState::Empty | SchemaState::Newer(_)) => {
            return Err(state.require_current(options).unwrap_err());
        }
    };
    migrate(&tx, from).await?;
    tx.commit().await.map_err(migration_failed)?;
    Ok(from)
}

/// Sets up an empty database or updates an older one, creating the database first if it is
/// missing: what `--auto-setup` does for development.
pub async fn auto_setup(options: &PostgresOptions) -> Result<()> {
    create_database(options).await?;
    match state(options).await? {
        SchemaState::Empty => match setup(options).await {
            // Another process set it up meanwhile.
            Err(_) if state(options).await? == SchemaState::Current => Ok(()),
            other => other,
        },
        SchemaState::Older(_) => update(options).await.map(drop),
        SchemaState::Current => Ok(()),
        newer @ SchemaState::Newer(_) => newer.require_current(options),
    }
}

/// A transaction holding the schema lock.
async fn locked(client: &mut Client) -> Result<Transaction<'_>> {
    let tx = client.transaction().await.map_err(errors::statement)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .await
        .map_err(errors::statement)?;
    Ok(tx)
}

/// The stored version, `None` without a `schema_version` table.
async fn read_version(client: &impl tokio_postgres::GenericClient) -> Result<Option<i64>> {
    let exists: bool = client
        .query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])
        .await
        .map_err(errors::statement)?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt("SELECT version FROM schema_version", &[])
        .await
        .map_err(errors::statement)?;
    Ok(Some(row.map_or(0, |r| r.get(0))))
}

/// Applies the migrations after `from` and records the new version, inside `tx`.
async fn migrate(tx: &Transaction<'_>, from: i64) -> Result<()> {
    for step in &MIGRATIONS[from as usize..] {
        tx.batch_execute(step).await.map_err(migration_failed)?;
    }
    tx.execute("DELETE FROM schema_version", &[])
        .await
        .map_err(migration_failed)?;
    tx.execute(
        "INSERT INTO schema_version (version) VALUES ($1)",
        &[&CURRENT_VERSION],
    )
    .await
    .map_err(migration_failed)?;
    Ok(())
}

fn migration_failed(e: tokio_postgres::Error) -> Error {
    match errors::statement(e) {
        Error::Backend(m) => Error::Backend(format!("schema migration failed: {m}")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier("sundial"), "\"sundial\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn states_name_the_command_that_fixes_them() {
        let options = PostgresOptions::default();
        assert_eq!(SchemaState::of(Some(CURRENT_VERSION)), SchemaState::Current);
        assert!(SchemaState::Current.require_current(&options).is_ok());
        let message = |state: SchemaState| state.require_current(&options).unwrap_err().to_string();
        assert!(message(SchemaState::of(None)).contains("sundial schema setup"));
        assert!(message(SchemaState::of(Some(0))).contains("sundial schema update"));
        assert!(message(SchemaState::of(Some(CURRENT_VERSION + 1))).contains("newer"));
    }
}
