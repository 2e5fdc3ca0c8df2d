//! The MySQL schema, its migrations and the schema commands (`sundial schema setup | update |
//! version`).
//!
//! `schema_version` holds one row: how many entries of [`MIGRATIONS`] have been applied. DDL in
//! MySQL commits on its own, so a step cannot be rolled back: every statement of a step is
//! idempotent (`IF NOT EXISTS`; an `ADD COLUMN`, which MySQL 8 cannot make conditional, counts
//! as done when the column is there), and a step that stopped halfway is simply run again. Migrations
//! run under a named lock (`GET_LOCK`), so two processes never apply the same step at once. Add
//! a migration by appending to [`MIGRATIONS`]; never edit a shipped one.
//!
//! Keys are `VARBINARY` and blobs `LONGBLOB`: text keys compare bytewise, as Rust strings do, so
//! `ORDER BY` matches the other backends whatever the server's collation. Key columns are sized
//! so every primary key stays under InnoDB's 3072-byte limit: namespace ids, run ids and
//! namespace names up to 255 bytes, workflow ids and task queue names up to 2048 bytes (Temporal
//! allows 1000 by default). A longer value fails its write (the session runs in strict mode).

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};

use super::MysqlOptions;
use super::error::{Sent, classify, code, server_code};
use crate::{Error, Result};

/// The schema, one step per entry, each a list of idempotent statements.
const MIGRATIONS: &[&[&str]] = &[
    // 1: the initial schema.
    &[
        // `commit_seq` and `commit_token` mark the shard's last commit, so a commit whose
        // answer was lost can be settled by reading them.
        "CREATE TABLE IF NOT EXISTS shards (
            shard_id     INT      NOT NULL,
            range_id     BIGINT   NOT NULL,
            data         LONGBLOB NOT NULL,
            commit_seq   BIGINT   NOT NULL DEFAULT 0,
            commit_token BIGINT   NOT NULL DEFAULT 0,
            PRIMARY KEY (shard_id)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
        "CREATE TABLE IF NOT EXISTS executions (
            shard_id      INT             NOT NULL,
            namespace_id  VARBINARY(255)  NOT NULL,
            workflow_id   VARBINARY(2048) NOT NULL,
            run_id        VARBINARY(255)  NOT NULL,
            state         LONGBLOB        NOT NULL,
            db_version    BIGINT          NOT NULL,
            next_event_id BIGINT          NOT NULL,
            PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
        "CREATE TABLE IF NOT EXISTS current_executions (
            shard_id     INT             NOT NULL,
            namespace_id VARBINARY(255)  NOT NULL,
            workflow_id  VARBINARY(2048) NOT NULL,
            run_id       VARBINARY(255)  NOT NULL,
            data         LONGBLOB        NOT NULL,
            PRIMARY KEY (shard_id, namespace_id, workflow_id)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
        "CREATE TABLE IF NOT EXISTS history_node (
            shard_id       INT             NOT NULL,
            namespace_id   VARBINARY(255)  NOT NULL,
            workflow_id    VARBINARY(2048) NOT NULL,
            run_id         VARBINARY(255)  NOT NULL,
            first_event_id BIGINT          NOT NULL,
            txn_id         BIGINT          NOT NULL,
            events         LONGBLOB        NOT NULL,
            PRIMARY KEY (shard_id, namespace_id, workflow_id, run_id, first_event_id)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
        "CREATE TABLE IF NOT EXISTS transfer_tasks (
            shard_id INT      NOT NULL,
            task_id  BIGINT   NOT NULL,
            data     LONGBLOB NOT NULL,
            PRIMARY KEY (shard_id, task_id)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
        "CREATE TABLE IF NOT EXISTS timer_tasks (
            shard_id     INT      NOT NULL,
            fire_time_ms BIGINT   NOT NULL,
            task_id      BIGINT   NOT NULL,
            data         LONGBLOB NOT NULL,
            PRIMARY KEY (shard_id, fire_time_ms, task_id)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
        "CREATE TABLE IF NOT EXISTS namespaces (
            id                   VARBINARY(255) NOT NULL,
            name                 VARBINARY(255) NOT NULL,
            notification_version BIGINT         NOT NULL,
            data                 LONGBLOB       NOT NULL,
            PRIMARY KEY (id),
            UNIQUE KEY namespaces_by_name (name)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
        "CREATE TABLE IF NOT EXISTS task_queues (
            namespace_id VARBINARY(255)  NOT NULL,
            name         VARBINARY(2048) NOT NULL,
            task_type    INT             NOT NULL,
            partition_id INT             NOT NULL,
            range_id     BIGINT          NOT NULL,
            PRIMARY KEY (namespace_id, name, task_type, partition_id)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
        "CREATE TABLE IF NOT EXISTS tasks (
            namespace_id VARBINARY(255)  NOT NULL,
            name         VARBINARY(2048) NOT NULL,
            task_type    INT             NOT NULL,
            partition_id INT             NOT NULL,
            task_id      BIGINT          NOT NULL,
            data         LONGBLOB        NOT NULL,
            PRIMARY KEY (namespace_id, name, task_type, partition_id, task_id)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC",
    ],
    // 2: what the store remembers of its cluster (see `ClusterMetadataStore`).
    &["CREATE TABLE IF NOT EXISTS cluster_metadata (
            cluster_name        VARBINARY(255) NOT NULL PRIMARY KEY,
            cluster_id          VARBINARY(255) NOT NULL,
            history_shard_count INT            NOT NULL
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC"],
    // 3: visibility records (see `VisibilityStore`).
    &[super::visibility::TABLE],
    // 4: the processes of the cluster (see `MembershipStore`).
    &["CREATE TABLE IF NOT EXISTS cluster_membership (
            host_id           VARBINARY(255) NOT NULL,
            role              VARBINARY(64)  NOT NULL,
            rpc_address       VARBINARY(255) NOT NULL,
            session_start_ms  BIGINT         NOT NULL,
            last_heartbeat_ms BIGINT         NOT NULL,
            record_expiry_ms  BIGINT         NOT NULL,
            PRIMARY KEY (host_id, role),
            KEY cluster_membership_by_role (role, last_heartbeat_ms)
        ) ENGINE = InnoDB ROW_FORMAT = DYNAMIC"],
    // 5: the address of each shard's owner (see `ShardStore::acquire_shard`).
    &["ALTER TABLE shards ADD COLUMN owner VARBINARY(255) NOT NULL DEFAULT ''"],
    // 6: where each member gossips (see `MembershipStore`).
    &[
        "ALTER TABLE cluster_membership ADD COLUMN gossip_address VARBINARY(255) NOT NULL DEFAULT ''",
    ],
];

/// The schema version this build writes: the number of migrations.
pub fn current_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// The schema a database holds, against the one this build writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaVersion {
    /// The stored version; `None` when the database holds no Sundial schema.
    pub stored: Option<i64>,
    /// The version this build writes ([`current_version`]).
    pub current: i64,
}

/// Creates the database of `options` unless it exists; true when it created it. Needs the
/// `CREATE` privilege only when the database is missing.
pub async fn create_database(options: &MysqlOptions) -> Result<bool> {
    let target = options.target();
    let mut conn = connect(options, false).await?;
    let sql_error = |e| classify(e, Sent::BeforeCommit, &target);
    let exists: Option<String> = conn
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&options.database_name,),
        )
        .await
        .map_err(sql_error)?;
    if exists.is_some() {
        return Ok(false);
    }
    // The name is checked to be a plain identifier (`MysqlOptions::check`).
    let create = format!(
        "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        options.database_name
    );
    conn.query_drop(create).await.map_err(|e| {
        Error::Backend(format!(
            "mysql {target}: the database is missing and could not be created \
             (create it, or give the user the CREATE privilege): {e}"
        ))
    })?;
    let _ = conn.disconnect().await;
    Ok(true)
}

/// `sundial schema setup`: creates the database when it is missing (and the user may), then
/// installs the current schema in it. A database already at the current version is left as it
/// is; one at an older version is refused (that is `update`'s work).
pub async fn setup_schema(options: &MysqlOptions) -> Result<SchemaVersion> {
    create_database(options).await?;
    migrate(options, |stored| match stored {
        None => Ok(0),
        Some(v) if v == current_version() => Ok(v),
        Some(v) if v < current_version() => Err(format!(
            "it holds schema version {v}, older than this build's {}: run `sundial schema update`",
            current_version()
        )),
        Some(v) => Err(newer(v)),
    })
    .await
}

/// `sundial schema update`: applies the migrations an existing schema is missing.
pub async fn update_schema(options: &MysqlOptions) -> Result<SchemaVersion> {
    migrate(options, |stored| match stored {
        None => Err("it holds no Sundial schema: run `sundial schema setup`".to_string()),
        Some(v) if v <= current_version() => Ok(v),
        Some(v) => Err(newer(v)),
    })
    .await
}

/// `sundial schema version`: the stored version against this build's.
pub async fn schema_version(options: &MysqlOptions) -> Result<SchemaVersion> {
    let target = options.target();
    let mut conn = connect(options, true).await?;
    let stored = stored_version(&mut conn)
        .await
        .map_err(|e| classify(e, Sent::BeforeCommit, &target))?;
    let _ = conn.disconnect().await;
    Ok(SchemaVersion {
        stored,
        current: current_version(),
    })
}

/// Refuses to serve from a database whose schema is missing, older or newer than this build's,
/// naming the command that fixes it.
pub(super) fn check_serving(target: &str, stored: Option<i64>) -> Result<()> {
    let problem = match stored {
        Some(v) if v == current_version() => return Ok(()),
        None => "holds no Sundial schema: run `sundial schema setup`".to_string(),
        Some(v) if v < current_version() => format!(
            "holds schema version {v}, older than this build's {}: run `sundial schema update`",
            current_version()
        ),
        Some(v) => newer(v),
    };
    Err(Error::Backend(format!("mysql database {target} {problem}")))
}

fn newer(stored: i64) -> String {
    format!(
        "its schema version {stored} is newer than this build supports ({}): run a newer Sundial",
        current_version()
    )
}

/// The stored schema version; `None` without a `schema_version` table.
pub(super) async fn stored_version(
    conn: &mut impl Queryable,
) -> std::result::Result<Option<i64>, mysql_async::Error> {
    match conn
        .query_first::<i64, _>("SELECT version FROM schema_version WHERE id = 1")
        .await
    {
        Err(e) if server_code(&e) == Some(code::NO_SUCH_TABLE) => Ok(None),
        other => other,
    }
}

/// One connection to the server (`with_database`: to the database of `options`).
async fn connect(options: &MysqlOptions, with_database: bool) -> Result<Conn> {
    let opts: Opts = options
        .to_opts(with_database)
        .map_err(|e| Error::Backend(e.to_string()))?;
    let target = options.target();
    Conn::new(opts).await.map_err(|e| {
        if server_code(&e) == Some(code::NO_SUCH_DATABASE) {
            missing_database(&target)
        } else {
            classify(e, Sent::BeforeCommit, &target)
        }
    })
}

/// The error of a connection to a database that does not exist.
pub(super) fn missing_database(target: &str) -> Error {
    Error::Backend(format!(
        "mysql {target}: the database does not exist: run `sundial schema setup` \
         (it creates the database when the user may)"
    ))
}

/// Brings the schema of `options`' database from the stored version to the current one, under
/// the schema lock. `plan` gets the stored version and answers the version to migrate from, or
/// why the database is refused.
async fn migrate(
    options: &MysqlOptions,
    plan: impl FnOnce(Option<i64>) -> std::result::Result<i64, String>,
) -> Result<SchemaVersion> {
    let target = options.target();
    let sql_error = |e| classify(e, Sent::BeforeCommit, &target);
    let mut conn = connect(options, true).await?;
    // The lock is the server's, so it is named after the database; it goes with the connection.
    let locked: Option<i64> = conn
        .query_first("SELECT GET_LOCK(CONCAT('sundial-schema-', MD5(DATABASE())), 60)")
        .await
        .map_err(sql_error)?;
    if locked != Some(1) {
        return Err(Error::Unavailable(format!(
            "mysql {target}: another process held the schema lock for a minute"
        )));
    }
    let stored = stored_version(&mut conn).await.map_err(sql_error)?;
    let from =
        plan(stored).map_err(|why| Error::Backend(format!("mysql database {target}: {why}")))?;
    conn.query_drop(
        "CREATE TABLE IF NOT EXISTS schema_version (
            id      TINYINT NOT NULL,
            version BIGINT  NOT NULL,
            PRIMARY KEY (id)
        ) ENGINE = InnoDB",
    )
    .await
    .map_err(sql_error)?;
    for (done, step) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        for statement in *step {
            match conn.query_drop(*statement).await {
                Err(e) if server_code(&e) == Some(code::DUPLICATE_COLUMN) => {}
                done => done.map_err(sql_error)?,
            }
        }
        conn.exec_drop(
            "INSERT INTO schema_version (id, version) VALUES (1, ?)
             ON DUPLICATE KEY UPDATE version = VALUES(version)",
            (done as i64 + 1,),
        )
        .await
        .map_err(sql_error)?;
    }
    let _ = conn.disconnect().await;
    Ok(SchemaVersion {
        stored: Some(current_version()),
        current: current_version(),
    })
}
