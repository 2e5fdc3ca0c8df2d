//! The SQLite schema, its migrations and the connection settings.
//!
//! `schema_version` holds one row: how many entries of [`MIGRATIONS`] have been applied. Opening
//! a database applies the missing ones in one transaction and refuses a database written by a
//! newer Sundial. Add a migration by appending to [`MIGRATIONS`]; never edit a shipped one.

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::{Error, Result};

/// Prepared statements each connection keeps (a commit alone uses a dozen).
const STATEMENT_CACHE: usize = 64;

/// How long a connection waits for another process's lock before failing with `SQLITE_BUSY`.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long opening a file waits for another process's lock while it sets the schema up.
pub(super) const SETUP_BUSY_TIMEOUT: Duration = Duration::from_secs(60);

/// The schema, one step per entry. Blobs are opaque to the store; text keys compare bytewise,
/// like Rust strings, so `ORDER BY` matches the in-memory backend.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    "
    CREATE TABLE shards (
        shard_id INTEGER PRIMARY KEY,
        range_id INTEGER NOT NULL,
        data     BLOB    NOT NULL
    );
    CREATE TABLE executions (
        shard_id      INTEGER NOT NULL,
        namespace_id  TEXT    NOT NULL,
        workflow_id   TEXT    NOT NULL,
        run_id        TEXT    NOT NULL,
        state         BLOB    NOT NULL,
        db_version    INTEGER NOT NULL,
        next_event_id INTEGER NOT NULL,
        PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id)
    ) WITHOUT ROWID;
    CREATE TABLE current_executions (
        shard_id     INTEGER NOT NULL,
        namespace_id TEXT    NOT NULL,
        workflow_id  TEXT    NOT NULL,
        run_id       TEXT    NOT NULL,
        data         BLOB    NOT NULL,
        PRIMARY KEY (shard_id, namespace_id, workflow_id)
    ) WITHOUT ROWID;
    CREATE TABLE history_node (
        shard_id       INTEGER NOT NULL,
        namespace_id   TEXT    NOT NULL,
        workflow_id    TEXT    NOT NULL,
        run_id         TEXT    NOT NULL,
        first_event_id INTEGER NOT NULL,
        txn_id         INTEGER NOT NULL,
        events         BLOB    NOT NULL,
        PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id, first_event_id)
    ) WITHOUT ROWID;
    CREATE TABLE transfer_tasks (
        shard_id INTEGER NOT NULL,
        task_id  INTEGER NOT NULL,
        data     BLOB    NOT NULL,
        PRIMARY KEY (shard_id, task_id)
    ) WITHOUT ROWID;
    CREATE TABLE timer_tasks (
        shard_id     INTEGER NOT NULL,
        fire_time_ms INTEGER NOT NULL,
        task_id      INTEGER NOT NULL,
        data         BLOB    NOT NULL,
        PRIMARY KEY (shard_id, fire_time_ms, task_id)
    ) WITHOUT ROWID;
    CREATE TABLE namespaces (
        id                   TEXT    PRIMARY KEY,
        name                 TEXT    NOT NULL UNIQUE,
        notification_version INTEGER NOT NULL,
        data                 BLOB    NOT NULL
    );
    CREATE TABLE task_queues (
        namespace_id TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        task_type    INTEGER NOT NULL,
        partition    INTEGER NOT NULL,
        range_id     INTEGER NOT NULL,
        PRIMARY KEY (namespace_id, name, task_type, partition)
    ) WITHOUT ROWID;
    CREATE TABLE tasks (
        namespace_id TEXT    NOT NULL,
        name         TEXT    NOT NULL,
        task_type    INTEGER NOT NULL,
        partition    INTEGER NOT NULL,
        task_id      INTEGER NOT NULL,
        data         BLOB    NOT NULL,
        PRIMARY KEY (namespace_id, name, task_type, partition, task_id)
    ) WITHOUT ROWID;
    ",
    // 2: what the store remembers of its cluster (see `ClusterMetadataStore`).
    "
    CREATE TABLE cluster_metadata (
        cluster_name        TEXT    PRIMARY KEY,
        cluster_id          TEXT    NOT NULL,
        history_shard_count INTEGER NOT NULL
    );
    ",
    // 3: visibility records (see `VisibilityStore`).
    super::visibility::TABLE,
    // 4: the processes of the cluster (see `MembershipStore`).
    "
    CREATE TABLE cluster_membership (
        host_id           TEXT    NOT NULL,
        role              TEXT    NOT NULL,
        rpc_address       TEXT    NOT NULL,
        session_start_ms  INTEGER NOT NULL,
        last_heartbeat_ms INTEGER NOT NULL,
        record_expiry_ms  INTEGER NOT NULL,
        PRIMARY KEY (host_id, role)
    ) WITHOUT ROWID;
    CREATE INDEX cluster_membership_by_role ON cluster_membership (role, last_heartbeat_ms);
    ",
    // 5: the address of each shard's owner (see `ShardStore::acquire_shard`).
    "ALTER TABLE shards ADD COLUMN owner TEXT NOT NULL DEFAULT '';",
    // 6: where each member gossips (see `MembershipStore`).
    "ALTER TABLE cluster_membership ADD COLUMN gossip_address TEXT NOT NULL DEFAULT '';",
];

/// The schema version this build writes: the number of migrations.
pub(super) fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Page cache of the writer connection, in KiB (SQLite's default is 2 MiB: past a few tens of
/// thousands of runs the indexes no longer fit and every write reads pages back from the OS).
const PAGE_CACHE_KIB: i64 = 32 * 1024;
/// Page cache of a reader connection, in KiB. A reader's cache is dropped whenever the writer
/// has committed since its last read, which is nearly always: a large one only costs the time
/// to drop it.
const READER_PAGE_CACHE_KIB: i64 = 2 * 1024;

/// Settings of every connection, file or memory.
pub(super) fn configure_any(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    Ok(())
}

/// Settings of the writer connection of a file database: WAL, and `synchronous=FULL` so a commit
/// that returned survives a process kill or a power loss.
pub(super) fn configure_file_writer(conn: &Connection) -> Result<()> {
    configure_any(conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::Backend(format!(
            "sqlite refused WAL journal mode (got {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Settings of a reader connection of a file database: it can never write.
pub(super) fn configure_file_reader(conn: &Connection) -> Result<()> {
    configure_any(conn)?;
    conn.pragma_update(None, "cache_size", -READER_PAGE_CACHE_KIB)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(())
}

/// Brings the schema up to [`current_version`], in one transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
        [],
    )?;
    let stored: Option<i64> = tx
        .query_row("SELECT version FROM schema_version", [], |row| row.get(0))
        .optional()?;
    let from = stored.unwrap_or(0);
    if from > current_version() {
        return Err(Error::Backend(format!(
            "database schema version {from} is newer than this build supports ({})",
            current_version()
        )));
    }
    for step in &MIGRATIONS[from as usize..] {
        tx.execute_batch(step)?;
    }
    if stored.is_none() {
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [current_version()],
        )?;
    } else if from < current_version() {
        tx.execute(
            "UPDATE schema_version SET version = ?1",
            [current_version()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.query_row("SELECT version FROM schema_version", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn migrate_creates_schema_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), current_version());
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn), current_version());
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM schema_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        conn.execute("UPDATE schema_version SET version = version + 1", [])
            .unwrap();
        assert!(matches!(migrate(&mut conn), Err(Error::Backend(_))));
    }

    /// The processes of a deployment open one new file at once (`--services`): each waits
    /// for the others' setup instead of failing with "database is locked".
    #[test]
    fn a_new_file_opened_by_many_at_once_is_set_up_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let opened: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    crate::sqlite::SqliteStore::open(&path).map(|_| ())
                })
            })
            .collect();
        for thread in opened {
            thread.join().unwrap().unwrap();
        }
        let conn = Connection::open(&path).unwrap();
        assert_eq!(version(&conn), current_version());
    }

    #[test]
    fn file_writer_uses_wal_and_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("db")).unwrap();
        configure_file_writer(&conn).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
    }
}
