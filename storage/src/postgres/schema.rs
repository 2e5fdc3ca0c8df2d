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

/// In `sundial_commit`: deletes the rows of `$table` of the runs named by `d_ns`, `d_wf` and
/// `d_run`, finding their ids (ctid) by key first.
macro_rules! delete_runs {
    ($table:literal) => {
        concat!(
            "DELETE FROM ",
            $table,
            " WHERE ctid = ANY(ARRAY(
                SELECT r.ctid FROM unnest(d_ns, d_wf, d_run) AS k(namespace_id, workflow_id, run_id)
                CROSS JOIN LATERAL (
                    SELECT ctid FROM ",
            $table,
            " WHERE shard_id = p_shard AND namespace_id = k.namespace_id
                      AND workflow_id = k.workflow_id AND run_id = k.run_id
                    OFFSET 0) r));
            "
        )
    };
}

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
    // 2: a shard's batch in one statement (see `commit.rs`): the fence, the conditions and
    // every write. Conditions that fail raise SD001 (ownership lost; DETAIL: the range_id
    // found), SD002 (a current-run condition; DETAIL: the write's position, HINT: `=` and the
    // run found, or empty) or SD003 (a db_version condition, likewise). Rows are looked up by
    // key through LATERAL subqueries that cannot be flattened, so the plans PL/pgSQL keeps
    // per session go by key whatever the tables held when they were made.
    concat!(
        r#"
    CREATE FUNCTION sundial_commit(
        p_shard integer, p_range bigint, p_data bytea,
        cw_ns text[], cw_wf text[], cw_expected text[],
        ew_ns text[], ew_wf text[], ew_run text[], ew_expected bigint[],
        c_ns text[], c_wf text[], c_run text[], c_data bytea[], c_exists boolean[],
        e_ns text[], e_wf text[], e_run text[], e_state bytea[], e_version bigint[],
        e_next bigint[], e_exists boolean[],
        h_ns text[], h_wf text[], h_run text[], h_first bigint[], h_txn bigint[],
        h_events bytea[],
        t_ids bigint[], t_data bytea[],
        tm_fire bigint[], tm_ids bigint[], tm_data bytea[],
        dt_ids bigint[],
        dtm_fire bigint[], dtm_ids bigint[],
        d_ns text[], d_wf text[], d_run text[]
    ) RETURNS text LANGUAGE plpgsql AS $body$
    DECLARE
        v_range bigint;
        v_write bigint;
        v_found text;
    BEGIN
        -- The fence: the shard row under a lock that an acquire_shard waits for.
        IF p_data IS NULL THEN
            SELECT range_id INTO v_range FROM shards WHERE shard_id = p_shard FOR SHARE;
        ELSE
            UPDATE shards SET data = p_data WHERE shard_id = p_shard AND range_id = p_range
            RETURNING range_id INTO v_range;
            IF NOT FOUND THEN
                SELECT range_id INTO v_range FROM shards WHERE shard_id = p_shard;
            END IF;
        END IF;
        IF v_range IS DISTINCT FROM p_range THEN
            RAISE EXCEPTION 'shard % has range_id %, not %', p_shard, coalesce(v_range, 0), p_range
                USING ERRCODE = 'SD001', DETAIL = coalesce(v_range, 0)::text;
        END IF;

        -- Conditions, judged against the rows before the batch, locked in key order (the
        -- written keys come sorted and deduplicated).
        IF cardinality(cw_ns) > 0 THEN
            WITH stored AS MATERIALIZED (
                SELECT s.namespace_id, s.workflow_id, s.run_id
                FROM unnest(c_ns, c_wf) AS k(namespace_id, workflow_id)
                CROSS JOIN LATERAL (
                    SELECT namespace_id, workflow_id, run_id FROM current_executions
                    WHERE shard_id = p_shard AND namespace_id = k.namespace_id
                      AND workflow_id = k.workflow_id
                    FOR UPDATE) s)
            SELECT w.i, s.run_id INTO v_write, v_found
            FROM unnest(cw_ns, cw_wf, cw_expected) WITH ORDINALITY
                AS w(namespace_id, workflow_id, expected, i)
            LEFT JOIN stored s
                ON s.namespace_id = w.namespace_id AND s.workflow_id = w.workflow_id
            WHERE s.run_id IS DISTINCT FROM w.expected
            ORDER BY w.i LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'current-run condition of write % failed', v_write
                    USING ERRCODE = 'SD002', DETAIL = v_write::text,
                          HINT = coalesce('=' || v_found, '');
            END IF;
        END IF;
        IF cardinality(ew_ns) > 0 THEN
            WITH stored AS MATERIALIZED (
                SELECT s.namespace_id, s.workflow_id, s.run_id, s.db_version
                FROM unnest(e_ns, e_wf, e_run) AS k(namespace_id, workflow_id, run_id)
                CROSS JOIN LATERAL (
                    SELECT namespace_id, workflow_id, run_id, db_version FROM executions
                    WHERE shard_id = p_shard AND namespace_id = k.namespace_id
                      AND workflow_id = k.workflow_id AND run_id = k.run_id
                    FOR UPDATE) s)
            SELECT w.i, s.db_version::text INTO v_write, v_found
            FROM unnest(ew_ns, ew_wf, ew_run, ew_expected) WITH ORDINALITY
                AS w(namespace_id, workflow_id, run_id, expected, i)
            LEFT JOIN stored s
                ON s.namespace_id = w.namespace_id AND s.workflow_id = w.workflow_id
               AND s.run_id = w.run_id
            WHERE s.db_version IS DISTINCT FROM w.expected
            ORDER BY w.i LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'db_version condition of write % failed', v_write
                    USING ERRCODE = 'SD003', DETAIL = v_write::text,
                          HINT = coalesce('=' || v_found, '');
            END IF;
        END IF;

        -- The writes, in the order the memory backend applies them. A row that must not
        -- exist is inserted, so a concurrent insert of its key fails on the primary key.
        -- Deletes find their rows' ids (ctid) by key first.
        IF true = ANY(c_exists) THEN
            INSERT INTO current_executions (shard_id, namespace_id, workflow_id, run_id, data)
            SELECT p_shard, k.ns, k.wf, k.run, k.data
            FROM unnest(c_ns, c_wf, c_run, c_data, c_exists) AS k(ns, wf, run, data, present)
            WHERE k.present
            ON CONFLICT (shard_id, namespace_id, workflow_id)
            DO UPDATE SET run_id = excluded.run_id, data = excluded.data;
        END IF;
        IF false = ANY(c_exists) THEN
            INSERT INTO current_executions (shard_id, namespace_id, workflow_id, run_id, data)
            SELECT p_shard, k.ns, k.wf, k.run, k.data
            FROM unnest(c_ns, c_wf, c_run, c_data, c_exists) AS k(ns, wf, run, data, present)
            WHERE NOT k.present;
        END IF;
        IF true = ANY(e_exists) THEN
            INSERT INTO executions
                (shard_id, namespace_id, workflow_id, run_id, state, db_version, next_event_id)
            SELECT p_shard, k.ns, k.wf, k.run, k.state, k.version, k.next
            FROM unnest(e_ns, e_wf, e_run, e_state, e_version, e_next, e_exists)
                AS k(ns, wf, run, state, version, next, present)
            WHERE k.present
            ON CONFLICT (shard_id, namespace_id, workflow_id, run_id)
            DO UPDATE SET state = excluded.state, db_version = excluded.db_version,
                          next_event_id = excluded.next_event_id;
        END IF;
        IF false = ANY(e_exists) THEN
            INSERT INTO executions
                (shard_id, namespace_id, workflow_id, run_id, state, db_version, next_event_id)
            SELECT p_shard, k.ns, k.wf, k.run, k.state, k.version, k.next
            FROM unnest(e_ns, e_wf, e_run, e_state, e_version, e_next, e_exists)
                AS k(ns, wf, run, state, version, next, present)
            WHERE NOT k.present;
        END IF;
        -- Same first event id: the write with the higher (or equal) txn_id wins.
        IF cardinality(h_ns) > 0 THEN
            INSERT INTO history_node
                (shard_id, namespace_id, workflow_id, run_id, first_event_id, txn_id, events)
            SELECT p_shard, * FROM unnest(h_ns, h_wf, h_run, h_first, h_txn, h_events)
            ON CONFLICT (shard_id, namespace_id, workflow_id, run_id, first_event_id)
            DO UPDATE SET txn_id = excluded.txn_id, events = excluded.events
            WHERE excluded.txn_id >= history_node.txn_id;
        END IF;
        IF cardinality(t_ids) > 0 THEN
            INSERT INTO transfer_tasks (shard_id, task_id, data)
            SELECT p_shard, * FROM unnest(t_ids, t_data)
            ON CONFLICT (shard_id, task_id) DO UPDATE SET data = excluded.data;
        END IF;
        IF cardinality(tm_ids) > 0 THEN
            INSERT INTO timer_tasks (shard_id, fire_time_ms, task_id, data)
            SELECT p_shard, * FROM unnest(tm_fire, tm_ids, tm_data)
            ON CONFLICT (shard_id, fire_time_ms, task_id) DO UPDATE SET data = excluded.data;
        END IF;
        IF cardinality(dt_ids) > 0 THEN
            DELETE FROM transfer_tasks WHERE ctid = ANY(ARRAY(
                SELECT t.ctid FROM unnest(dt_ids) AS k(task_id)
                CROSS JOIN LATERAL (
                    SELECT ctid FROM transfer_tasks
                    WHERE shard_id = p_shard AND task_id = k.task_id
                    OFFSET 0) t));
        END IF;
        IF cardinality(dtm_ids) > 0 THEN
            DELETE FROM timer_tasks WHERE ctid = ANY(ARRAY(
                SELECT t.ctid FROM unnest(dtm_fire, dtm_ids) AS k(fire_time_ms, task_id)
                CROSS JOIN LATERAL (
                    SELECT ctid FROM timer_tasks
                    WHERE shard_id = p_shard AND fire_time_ms = k.fire_time_ms
                      AND task_id = k.task_id
                    OFFSET 0) t));
        END IF;
        IF cardinality(d_ns) > 0 THEN
            "#,
        delete_runs!("executions"),
        delete_runs!("history_node"),
        delete_runs!("current_executions"),
        r#"
        END IF;
        RETURN txid_current()::text || '@' || pg_postmaster_start_time()::text;
    END
    $body$;
    "#
    ),
    // 3: what the store remembers of its cluster (see `ClusterMetadataStore`).
    r#"
    CREATE TABLE cluster_metadata (
        cluster_name        text    COLLATE "C" PRIMARY KEY,
        cluster_id          text    NOT NULL,
        history_shard_count integer NOT NULL
    );
    "#,
    // 4: visibility records (see `VisibilityStore`).
    super::visibility::TABLE,
    // 5: the processes of the cluster (see `MembershipStore`).
    r#"
    CREATE TABLE cluster_membership (
        host_id           text   COLLATE "C" NOT NULL,
        role              text   COLLATE "C" NOT NULL,
        rpc_address       text   NOT NULL,
        session_start_ms  bigint NOT NULL,
        last_heartbeat_ms bigint NOT NULL,
        record_expiry_ms  bigint NOT NULL,
        PRIMARY KEY (host_id, role)
    );
    CREATE INDEX cluster_membership_by_role ON cluster_membership (role, last_heartbeat_ms);
    "#,
    // 6: the address of each shard's owner (see `ShardStore::acquire_shard`).
    "ALTER TABLE shards ADD COLUMN owner text NOT NULL DEFAULT '';",
    // 7: where each member gossips (see `MembershipStore`).
    "ALTER TABLE cluster_membership ADD COLUMN gossip_address text NOT NULL DEFAULT '';",
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
        // Another process created it at the same moment (the processes of one deployment
        // start together): the catalog's unique index refused the second row.
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(false),
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
