//! Visibility records: written by the commit that carries them and gone with their run; listed
//! in Temporal's order, page after page, and counted, as `VisibilityRow::matches` and
//! `VisibilityCursor::listing_order` define them.

use std::collections::BTreeMap;

use sundial_storage::visibility::{
    self, Attribute, Filter, GroupValue, IndexedValue, Timestamp, ValueType, VisibilityCursor,
    VisibilityRow,
};
use sundial_storage::{DynStore, ExecutionKey, ShardBatch};

use super::{Harness, NS, key, start_batch};

/// The custom attributes the queries here name.
fn attributes() -> BTreeMap<String, ValueType> {
    [
        ("CustomKeyword", ValueType::Keyword),
        ("CustomInt", ValueType::Int),
        ("BuildIds", ValueType::KeywordList),
        ("TemporalNamespaceDivision", ValueType::Keyword),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect()
}

/// The filter of `query` (`None` for the empty query).
pub fn filter(query: &str) -> Option<Filter> {
    visibility::parse(query, &attributes())
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .filter
}

fn group_by(query: &str) -> Attribute {
    visibility::parse(query, &attributes())
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .group_by
        .expect("a GROUP BY")
}

/// A time `seconds` after 2026-01-01, at microsecond precision (what stores keep).
fn at(seconds: i64, micros: i64) -> Timestamp {
    Timestamp::from_unix_nanos((1_767_225_600 + seconds) * 1_000_000_000 + micros * 1_000)
}

/// The record of run `run_id` of workflow `workflow_id`, open.
pub fn record(workflow_id: &str, run_id: &str) -> VisibilityRow {
    VisibilityRow {
        namespace_id: NS.to_string(),
        run_id: run_id.to_string(),
        workflow_id: workflow_id.to_string(),
        workflow_type: "Checkout".to_string(),
        task_queue: "payments".to_string(),
        status: 1,
        start_time: at(0, 0),
        execution_time: at(0, 0),
        close_time: None,
        execution_duration: None,
        history_length: None,
        history_size_bytes: None,
        state_transition_count: None,
        parent_workflow_id: None,
        parent_run_id: None,
        root_workflow_id: workflow_id.to_string(),
        root_run_id: run_id.to_string(),
        memo: b"memo".to_vec(),
        search_attributes: b"attributes".to_vec(),
        indexed: BTreeMap::new(),
    }
}

/// `row` as a listing answers it (the typed attributes stay in the payloads).
fn listed(row: &VisibilityRow) -> VisibilityRow {
    VisibilityRow {
        indexed: BTreeMap::new(),
        ..row.clone()
    }
}

fn run_key(row: &VisibilityRow) -> ExecutionKey {
    key(&row.workflow_id, &row.run_id)
}

async fn list_all(store: &DynStore, filter: Option<&Filter>) -> Vec<VisibilityRow> {
    store
        .list_visibility(NS, filter, None, usize::MAX)
        .await
        .unwrap()
}

/// A run's record lands with the commit that carries it, is replaced by a later one (its
/// close), comes back whole, and goes with the run; other namespaces do not see it.
pub async fn visibility_is_written_with_the_commit_and_deleted_with_the_run(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let mut open = record("order-1", "run-1");
    open.parent_workflow_id = Some("parent".into());
    open.parent_run_id = Some("parent-run".into());
    open.indexed
        .insert("CustomKeyword".into(), IndexedValue::Keyword("gold".into()));
    let k = run_key(&open);
    let mut batch = start_batch(&k);
    batch.visibility.push(open.clone());
    store.commit(1, range, batch).await.unwrap();
    assert_eq!(list_all(&store, None).await, [listed(&open)]);
    let gold = filter("CustomKeyword = 'gold'");
    assert_eq!(list_all(&store, gold.as_ref()).await, [listed(&open)]);
    assert!(
        store
            .list_visibility("another-namespace", None, None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let mut closed = open.clone();
    closed.status = 2;
    closed.close_time = Some(at(90, 5));
    closed.execution_duration = Some(90_000_005_000);
    closed.history_length = Some(11);
    closed.indexed.clear();
    let batch = ShardBatch {
        visibility: vec![closed.clone()],
        ..ShardBatch::default()
    };
    store.commit(1, range, batch).await.unwrap();
    assert_eq!(list_all(&store, None).await, [listed(&closed)]);
    assert!(list_all(&store, gold.as_ref()).await.is_empty());
    let count = store.count_visibility(NS, None, None).await.unwrap();
    assert_eq!(count.total, 1);

    let batch = ShardBatch {
        delete_executions: vec![k],
        ..ShardBatch::default()
    };
    store.commit(1, range, batch).await.unwrap();
    assert!(list_all(&store, None).await.is_empty());
    assert_eq!(
        store.count_visibility(NS, None, None).await.unwrap().total,
        0
    );
}

/// Runs with ties in close and start time, open and closed, with and without attributes.
fn runs() -> Vec<VisibilityRow> {
    (0..60)
        .map(|i: i64| {
            let mut row = record(&format!("wf-{:02}", i % 23), &format!("run-{i:02}"));
            row.start_time = at(i % 7, i % 2);
            row.execution_time = row.start_time;
            if i % 4 != 0 {
                row.status = [2, 3, 4, 5, 7][(i % 5) as usize];
                row.close_time = Some(at(100 + i % 5, 0));
                row.execution_duration = Some(1_000);
            }
            if i % 3 == 0 {
                row.indexed.insert(
                    "CustomKeyword".into(),
                    IndexedValue::Keyword(["gold", "silver"][(i % 2) as usize].into()),
                );
            }
            if i % 5 != 1 {
                row.indexed.insert("CustomInt".into(), IndexedValue::Int(i));
            }
            if i % 6 == 0 {
                row.indexed.insert(
                    "BuildIds".into(),
                    IndexedValue::KeywordList(vec!["b1".into(), format!("b{}", i % 4)]),
                );
            }
            if i % 10 == 0 {
                row.indexed.insert(
                    "TemporalNamespaceDivision".into(),
                    IndexedValue::Keyword("TemporalScheduler".into()),
                );
            }
            row
        })
        .collect()
}

const QUERIES: &[&str] = &[
    "",
    "ExecutionStatus = 'Running'",
    "ExecutionStatus != 'Running' AND CustomInt > 20",
    "CustomKeyword = 'gold' OR BuildIds = 'b2'",
    "CloseTime IS NULL OR WorkflowId STARTS_WITH 'wf-1'",
    "CustomInt NOT IN (3, 4, 5) AND StartTime < '2026-01-01T00:00:04Z'",
    "TemporalNamespaceDivision IS NULL",
];

/// Paging through a listing (pages of 7, each after the last run of the one before) lists what
/// the filter lists, in listing order, each run once; counts, whole and grouped, agree.
pub async fn visibility_pages_list_in_order_and_counts_group(h: &dyn Harness) {
    let store = h.open();
    let range = store.acquire_shard(1, "owner-a").await.unwrap().range_id;
    let rows = runs();
    for chunk in rows.chunks(9) {
        let batch = ShardBatch {
            visibility: chunk.to_vec(),
            ..ShardBatch::default()
        };
        store.commit(1, range, batch).await.unwrap();
    }
    for query in QUERIES {
        let filter = filter(query);
        let mut expected: Vec<&VisibilityRow> = rows
            .iter()
            .filter(|r| filter.as_ref().is_none_or(|f| r.matches(f)))
            .collect();
        expected.sort_by(|a, b| a.cursor().listing_order(&b.cursor()));
        let expected: Vec<&str> = expected.iter().map(|r| r.run_id.as_str()).collect();

        let mut paged = Vec::new();
        let mut after: Option<VisibilityCursor> = None;
        loop {
            let page = store
                .list_visibility(NS, filter.as_ref(), after.as_ref(), 7)
                .await
                .unwrap();
            assert!(page.len() <= 7);
            paged.extend(page.iter().map(|r| r.run_id.clone()));
            match page.last() {
                Some(last) if page.len() == 7 => after = Some(last.cursor()),
                _ => break,
            }
        }
        assert_eq!(paged, expected, "{query:?}");

        let count = store
            .count_visibility(NS, filter.as_ref(), None)
            .await
            .unwrap();
        assert_eq!(count.total, expected.len() as i64, "{query:?}");
        assert!(count.groups.is_empty());
        for grouping in [
            "GROUP BY ExecutionStatus",
            "GROUP BY TemporalNamespaceDivision",
        ] {
            let attribute = group_by(grouping);
            let mut groups: BTreeMap<GroupValue, i64> = BTreeMap::new();
            for row in rows
                .iter()
                .filter(|r| filter.as_ref().is_none_or(|f| r.matches(f)))
            {
                *groups.entry(GroupValue::of(row, &attribute)).or_default() += 1;
            }
            let count = store
                .count_visibility(NS, filter.as_ref(), Some(&attribute))
                .await
                .unwrap();
            assert_eq!(count.total, expected.len() as i64, "{query:?} {grouping}");
            assert_eq!(
                count.groups,
                groups.into_iter().collect::<Vec<_>>(),
                "{query:?} {grouping}"
            );
        }
    }
}
