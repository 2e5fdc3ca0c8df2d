//! Visibility at scale: loads closed runs into a store through the shard commit path, then
//! times the listings and counts `ListWorkflowExecutions` and `CountWorkflowExecutions` run.
//! A benchmark, not a test: it prints figures (the median and the slowest of several tries).
//! Every query gets `TemporalNamespaceDivision IS NULL`, as the frontend adds it.
//!
//! ```sh
//! cargo run --release -p sundial-storage --example visibility_bench -- sqlite 1000000
//! cargo run --release -p sundial-storage --example visibility_bench -- postgres 1000000
//! ```
//!
//! SQLite gets a file in a temporary directory; PostgreSQL a private server (sundial-testdb,
//! durable settings) under `target/`. Both are deleted at the end.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use sundial_storage::postgres::{PostgresOptions, PostgresStore};
use sundial_storage::sqlite::SqliteStore;
use sundial_storage::visibility::{
    self, IndexedValue, Timestamp, ValueType, VisibilityCursor, VisibilityRow,
};
use sundial_storage::{DynStore, ShardBatch};

const NAMESPACE: &str = "bench-namespace";
const BATCH: usize = 2_000;
const TRIES: usize = 7;

/// A small deterministic generator (xorshift), so every run loads the same rows.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn row(i: usize, rng: &mut Rng) -> VisibilityRow {
    // Starts spread over 30 days of 2026; each run lasts up to an hour.
    let start_s = 1_767_225_600 + rng.below(30 * 86_400) as i64;
    let start = Timestamp::from_unix_nanos(start_s * 1_000_000_000 + rng.below(1000) as i64);
    let duration_ns = (1 + rng.below(3_600_000)) as i64 * 1_000_000;
    let close = Timestamp::from_unix_nanos(start_s * 1_000_000_000 + duration_ns);
    let workflow_id = format!("order-{i:07}");
    let indexed = BTreeMap::from([
        (
            "CustomerId".to_string(),
            IndexedValue::Keyword(format!("customer-{}", rng.below(1000))),
        ),
        (
            "Amount".to_string(),
            IndexedValue::Int(rng.below(10_000) as i64),
        ),
    ]);
    VisibilityRow {
        namespace_id: NAMESPACE.into(),
        run_id: format!("{:016x}-{i:07}", rng.below(u64::MAX)),
        workflow_id: workflow_id.clone(),
        workflow_type: format!("Type{}", rng.below(20)),
        task_queue: format!("queue-{}", rng.below(10)),
        // Completed mostly, then failed, canceled, terminated, timed out.
        status: [2, 2, 2, 2, 2, 2, 3, 4, 5, 7][rng.below(10) as usize],
        start_time: start,
        execution_time: start,
        close_time: Some(close),
        execution_duration: Some(duration_ns),
        history_length: Some(5 + rng.below(40) as i64),
        history_size_bytes: Some(500 + rng.below(10_000) as i64),
        state_transition_count: Some(3 + rng.below(20) as i64),
        parent_workflow_id: None,
        parent_run_id: None,
        root_workflow_id: workflow_id,
        root_run_id: String::new(),
        memo: Vec::new(),
        search_attributes: Vec::new(),
        indexed,
    }
}

async fn load(store: &DynStore, runs: usize) {
    let shard = store
        .acquire_shard(1, "owner-a")
        .await
        .expect("acquire shard 1");
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let began = Instant::now();
    let mut written = 0;
    while written < runs {
        let n = BATCH.min(runs - written);
        let batch = ShardBatch {
            visibility: (written..written + n).map(|i| row(i, &mut rng)).collect(),
            ..ShardBatch::default()
        };
        store
            .commit(1, shard.range_id, batch)
            .await
            .expect("commit visibility rows");
        written += n;
        if written % 100_000 == 0 {
            eprintln!("  loaded {written} runs ({:.0?})", began.elapsed());
        }
    }
    println!(
        "loaded {runs} closed runs in {:.1} s ({:.0} runs/s)",
        began.elapsed().as_secs_f64(),
        runs as f64 / began.elapsed().as_secs_f64()
    );
}

/// The median and the slowest of [`TRIES`] runs of `f` (after one to warm the caches).
async fn time<F, Fut, T>(mut f: F) -> (Duration, Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut last = f().await;
    let mut times = Vec::with_capacity(TRIES);
    for _ in 0..TRIES {
        let began = Instant::now();
        last = f().await;
        times.push(began.elapsed());
    }
    times.sort();
    (times[TRIES / 2], times[TRIES - 1], last)
}

async fn measure(store: &DynStore) {
    let types = BTreeMap::from([
        ("CustomerId".to_string(), ValueType::Keyword),
        ("Amount".to_string(), ValueType::Int),
        ("TemporalNamespaceDivision".to_string(), ValueType::Keyword),
    ]);
    // As the frontend asks: only runs without a namespace division, unless a query names it.
    let parse = |q: &str| {
        let (filter, group_by) = q.split_once("GROUP BY").unwrap_or((q, ""));
        let division = "TemporalNamespaceDivision IS NULL";
        let full = match (filter.trim(), group_by.trim()) {
            ("", "") => division.to_string(),
            ("", g) => format!("{division} GROUP BY {g}"),
            (f, "") => format!("({f}) AND {division}"),
            (f, g) => format!("({f}) AND {division} GROUP BY {g}"),
        };
        visibility::parse(&full, &types).expect("query parses")
    };
    println!(
        "{:<62} {:>9} {:>9} {:>8}",
        "query", "median", "slowest", "answer"
    );
    let report = |what: &str, (median, slowest, n): (Duration, Duration, usize)| {
        println!(
            "{what:<62} {:>7.1}ms {:>7.1}ms {n:>8}",
            median.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3
        )
    };
    for query in [
        "",
        "WorkflowType = 'Type7'",
        "ExecutionStatus = 'Failed'",
        "TaskQueue = 'queue-3' AND WorkflowType = 'Type7'",
        "WorkflowId = 'order-0500000'",
        "CloseTime > '2026-01-20T00:00:00Z'",
        "CustomerId = 'customer-17'",
        "Amount < 100",
    ] {
        let filter = parse(query).filter;
        let page = time(|| async {
            store
                .list_visibility(NAMESPACE, filter.as_ref(), None, 100)
                .await
                .expect("list")
        })
        .await;
        let label = format!(
            "page of 100: {}",
            if query.is_empty() { "(all)" } else { query }
        );
        report(&label, (page.0, page.1, page.2.len()));
        // The tenth page, from the cursor of the ninth's last run.
        let mut after: Option<VisibilityCursor> = None;
        for _ in 0..9 {
            let rows = store
                .list_visibility(NAMESPACE, filter.as_ref(), after.as_ref(), 100)
                .await
                .expect("list");
            after = rows.last().map(VisibilityRow::cursor);
        }
        if let Some(after) = after {
            let tenth = time(|| async {
                store
                    .list_visibility(NAMESPACE, filter.as_ref(), Some(&after), 100)
                    .await
                    .expect("list")
            })
            .await;
            report("  its tenth page", (tenth.0, tenth.1, tenth.2.len()));
        }
    }
    for query in [
        "",
        "GROUP BY ExecutionStatus",
        "WorkflowType = 'Type7'",
        "WorkflowType = 'Type7' GROUP BY ExecutionStatus",
        "CustomerId = 'customer-17'",
    ] {
        let parsed = parse(query);
        let count = time(|| async {
            store
                .count_visibility(NAMESPACE, parsed.filter.as_ref(), parsed.group_by.as_ref())
                .await
                .expect("count")
        })
        .await;
        let label = format!("count: {}", if query.is_empty() { "(all)" } else { query });
        report(&label, (count.0, count.1, count.2.total as usize));
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args.first().map(String::as_str).unwrap_or("sqlite");
    let runs: usize = args
        .get(1)
        .map(|n| n.parse().expect("the number of runs"))
        .unwrap_or(1_000_000);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let mut server = None;
    let store: DynStore = match kind {
        "sqlite" => {
            let path = scratch.path().join("visibility-bench.db");
            std::sync::Arc::new(SqliteStore::open(&path).expect("open SQLite"))
        }
        "postgres" => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tmp");
            let db = sundial_testdb::postgres::Server::start_durable(&root, "visibility-bench")
                .expect("a private PostgreSQL server");
            let options = PostgresOptions {
                connect_addr: db.address(),
                database_name: "visibility_bench".into(),
                user: sundial_testdb::postgres::USER.into(),
                password: sundial_testdb::postgres::PASSWORD.into(),
                ..PostgresOptions::default()
            };
            server = Some(db);
            std::sync::Arc::new(
                PostgresStore::open_with_auto_setup(&options)
                    .await
                    .expect("open PostgreSQL"),
            )
        }
        other => panic!("unknown store {other:?}: sqlite or postgres"),
    };
    println!("store: {kind}");
    load(&store, runs).await;
    // Registering the custom attributes indexes them (here after the load: the build time of
    // an index over every run).
    let began = Instant::now();
    for (name, value_type) in [
        ("CustomerId", ValueType::Keyword),
        ("Amount", ValueType::Int),
    ] {
        store
            .index_attribute(name, value_type)
            .await
            .expect("index a custom attribute");
    }
    println!(
        "indexed CustomerId and Amount in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    if let Some(db) = &server {
        // What autovacuum does to a table after a load, before the planner can count with
        // index-only scans (without it, a count fetches every row from the heap: 1.6 s).
        let began = Instant::now();
        db.sql("visibility_bench", "VACUUM ANALYZE executions_visibility")
            .expect("VACUUM ANALYZE");
        println!(
            "vacuumed and analyzed in {:.1} s",
            began.elapsed().as_secs_f64()
        );
    }
    measure(&store).await;
}
