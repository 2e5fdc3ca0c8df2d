//! The storage conformance suite: one set of tests, instantiated for every backend by
//! [`conformance_suite!`]. A test is a function taking a [`Harness`]; a backend is a `Harness`
//! that opens stores on a fresh instance. Durable backends also run the reopen tests.
//!
//! To add a backend: implement [`Harness`] and add one `conformance_suite!` line at the bottom.

mod concurrency;
// Only durable backends run it.
#[cfg_attr(
    not(any(feature = "sqlite", feature = "mysql", feature = "postgres")),
    allow(dead_code)
)]
mod durability;
mod executions;
mod fencing;
mod history;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "mysql")]
mod mysql_backend;
mod namespaces;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "postgres")]
mod postgres_backend;
#[cfg(feature = "postgres")]
mod postgres_tls;
mod shard;
mod task_queues;
mod tasks;
mod visibility;

use std::sync::Arc;

#[cfg(feature = "mysql")]
use mysql::MariadbHarness;
#[cfg(feature = "postgres")]
use postgres::PostgresHarness;
use sundial_storage::memory::MemoryStore;
#[cfg(feature = "sqlite")]
use sundial_storage::sqlite::SqliteStore;
use sundial_storage::{
    CurrentExecutionRow, CurrentExecutionWrite, DynStore, ExecutionKey, ExecutionRow,
    ExecutionWrite, HistoryAppend, HistoryBatch, NamespaceRow, ShardBatch, TaskQueueKey,
};
#[cfg(feature = "sqlite")]
use tempfile::TempDir;

/// One fresh instance of a backend, for one test.
pub trait Harness: Send + Sync {
    /// A fresh, empty instance.
    fn new() -> Self
    where
        Self: Sized;

    /// Opens a store on the instance. For a durable backend every call opens a new handle on
    /// the same data (as a restarted process would); otherwise it may be a fresh store.
    fn open(&self) -> DynStore;
}

/// The in-memory backend.
pub struct MemoryHarness;

impl Harness for MemoryHarness {
    fn new() -> Self {
        MemoryHarness
    }

    fn open(&self) -> DynStore {
        Arc::new(MemoryStore::new())
    }
}

/// SQLite on an in-memory database.
#[cfg(feature = "sqlite")]
pub struct SqliteMemoryHarness;

#[cfg(feature = "sqlite")]
impl Harness for SqliteMemoryHarness {
    fn new() -> Self {
        SqliteMemoryHarness
    }

    fn open(&self) -> DynStore {
        Arc::new(SqliteStore::open_in_memory().expect("open sqlite in memory"))
    }
}

/// SQLite on a file in a temporary directory, removed when the harness drops.
#[cfg(feature = "sqlite")]
pub struct SqliteFileHarness {
    dir: TempDir,
}

#[cfg(feature = "sqlite")]
impl Harness for SqliteFileHarness {
    fn new() -> Self {
        SqliteFileHarness {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn open(&self) -> DynStore {
        Arc::new(SqliteStore::open(&self.dir.path().join("sundial.db")).expect("open sqlite file"))
    }
}

/// Instantiates every conformance test for one backend, as `mod $backend`. With `durable`, the
/// reopen tests run too.
macro_rules! conformance_suite {
    ($backend:ident, $harness:ident $(, $durable:ident)?) => {
        mod $backend {
            conformance_suite!(@tests super::$harness;
                shard::acquire_shard_creates_then_increments,
                shard::stale_owner_commit_is_rejected_and_writes_nothing,
                shard::acquire_records_the_owner,
                shard::renew_moves_the_range_only_for_the_owner,
                shard::commit_to_unacquired_shard_is_rejected,
                shard::shard_data_is_returned_by_next_acquire,
                shard::shards_are_isolated,
                executions::execution_insert_then_update,
                executions::delete_removes_the_run_and_its_history,
                executions::insert_of_existing_execution_fails,
                executions::update_of_missing_execution_fails,
                executions::wrong_version_rejects_whole_batch,
                executions::current_execution_compare_and_set,
                executions::list_executions_is_ordered_and_limited,
                history::history_append_and_ranged_read,
                history::history_rewrite_with_higher_txn_replaces,
                history::history_read_covering_starts_at_the_batch_holding_the_event,
                tasks::transfer_tasks_order_limit_and_delete,
                tasks::timer_tasks_until_order_and_delete,
                namespaces::namespace_create_get_list,
                namespaces::namespace_duplicate_is_rejected,
                namespaces::namespace_update_compare_and_set,
                namespaces::cluster_metadata_first_writer_wins,
                namespaces::membership_rows_are_upserted_listed_by_role_and_pruned,
                task_queues::task_queue_lease_increments,
                task_queues::task_queue_writes_are_fenced_by_lease,
                task_queues::get_tasks_order_limit_after,
                concurrency::concurrent_commits_on_one_shard_all_land,
                concurrency::racing_updates_to_one_execution_never_lose_one,
                concurrency::a_fenced_shard_fails_alone_among_concurrent_shards,
                fencing::racing_owners_stale_commit_is_refused_and_leaves_nothing,
                visibility::visibility_is_written_with_the_commit_and_deleted_with_the_run,
                visibility::visibility_pages_list_in_order_and_counts_group,
            );
            $(conformance_suite!(@$durable super::$harness);)?
        }
    };
    (@durable $harness:ty) => {
        conformance_suite!(@tests $harness;
            durability::commit_survives_reopen,
            durability::crash_between_commit_and_effect_loses_nothing,
            durability::second_process_fences_the_first,
            durability::cluster_metadata_survives_reopen,
        );
    };
    (@tests $harness:ty; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = <$harness as $crate::conformance::Harness>::new();
                $crate::conformance::$module::$name(&harness).await;
            }
        )*
    };
}

conformance_suite!(memory, MemoryHarness);
#[cfg(feature = "sqlite")]
conformance_suite!(sqlite_memory, SqliteMemoryHarness);
#[cfg(feature = "sqlite")]
conformance_suite!(sqlite_file, SqliteFileHarness, durable);
#[cfg(feature = "postgres")]
conformance_suite!(postgresql, PostgresHarness, durable);
#[cfg(feature = "mysql")]
conformance_suite!(mariadb, MariadbHarness, durable);

// ---- builders shared by the tests ----

/// The namespace id every test uses.
pub const NS: &str = "ns-1";

/// The key of a run.
pub fn key(workflow_id: &str, run_id: &str) -> ExecutionKey {
    ExecutionKey {
        namespace_id: NS.to_string(),
        workflow_id: workflow_id.to_string(),
        run_id: run_id.to_string(),
    }
}

/// A mutable-state row whose state names its version.
pub fn execution(key: &ExecutionKey, db_version: i64) -> ExecutionRow {
    ExecutionRow {
        key: key.clone(),
        state: format!("state-v{db_version}").into_bytes(),
        db_version,
        next_event_id: db_version * 10,
    }
}

/// A write of `execution(key, db_version)` expecting `expected`.
pub fn execution_write(
    key: &ExecutionKey,
    db_version: i64,
    expected: Option<i64>,
) -> ExecutionWrite {
    ExecutionWrite {
        row: execution(key, db_version),
        expected_db_version: expected,
    }
}

/// A current-run write of `key`'s run expecting `expected`.
pub fn current_write(key: &ExecutionKey, expected: Option<&str>) -> CurrentExecutionWrite {
    CurrentExecutionWrite {
        row: current_row(key),
        expected_run_id: expected.map(str::to_string),
    }
}

/// The current-run row pointing at `key`'s run.
pub fn current_row(key: &ExecutionKey) -> CurrentExecutionRow {
    CurrentExecutionRow {
        namespace_id: key.namespace_id.clone(),
        workflow_id: key.workflow_id.clone(),
        run_id: key.run_id.clone(),
        data: format!("current-{}", key.run_id).into_bytes(),
    }
}

/// A history append.
pub fn history(
    key: &ExecutionKey,
    first_event_id: i64,
    txn_id: i64,
    events: &str,
) -> HistoryAppend {
    HistoryAppend {
        key: key.clone(),
        batch: HistoryBatch {
            first_event_id,
            txn_id,
            events: events.as_bytes().to_vec(),
        },
    }
}

/// A batch that starts a run: current pointer, execution row, first history batch.
pub fn start_batch(key: &ExecutionKey) -> ShardBatch {
    ShardBatch {
        current_executions: vec![current_write(key, None)],
        executions: vec![execution_write(key, 1, None)],
        history: vec![history(key, 1, 1, "started")],
        ..ShardBatch::default()
    }
}

/// A namespace row.
pub fn namespace(id: &str, name: &str, version: i64) -> NamespaceRow {
    NamespaceRow {
        id: id.to_string(),
        name: name.to_string(),
        notification_version: version,
        data: format!("{name}-v{version}").into_bytes(),
    }
}

/// A task-queue partition key.
pub fn queue(name: &str, task_type: i32, partition: i32) -> TaskQueueKey {
    TaskQueueKey {
        namespace_id: NS.to_string(),
        name: name.to_string(),
        task_type,
        partition,
    }
}
