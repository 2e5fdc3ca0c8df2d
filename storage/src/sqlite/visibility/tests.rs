//! The SQL of every filter lists, on a real SQLite, exactly the runs `VisibilityRow::matches`
//! lists: over generated runs (attributes present or not, values from small sets so filters
//! hit), for the reference corpus's accepted queries and more.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::*;
use crate::visibility::parse;
use crate::visibility::tests::attributes;

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn maybe(&mut self) -> bool {
        self.below(3) != 0
    }
}

fn at(seconds: i64, nanos: u32) -> Timestamp {
    Timestamp { seconds, nanos }
}

fn generated_runs(count: usize) -> Vec<VisibilityRow> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let base = 1_704_067_200; // 2024-01-01T00:00:00Z
    (0..count)
        .map(|i| {
            let start = at(
                base + rng.below(100_000) as i64,
                rng.below(1_000_000_000) as u32,
            );
            let closed = rng.maybe();
            let mut indexed = BTreeMap::new();
            if rng.maybe() {
                let v = rng.pick(&["gold", "silver", "quoted name", "x", "order-1", ""]);
                indexed.insert("CustomKeyword".into(), IndexedValue::Keyword(v.into()));
            }
            if rng.maybe() {
                let v = rng.below(9) as i64 - 3;
                indexed.insert("CustomInt".into(), IndexedValue::Int(v));
            }
            if rng.maybe() {
                indexed.insert("CustomBool".into(), IndexedValue::Bool(rng.below(2) == 0));
            }
            if rng.maybe() {
                let v = rng.pick(&["the quick brown fox", "Quick-fox!", "lazy dog", "fox"]);
                indexed.insert("CustomText".into(), IndexedValue::Text(v.into()));
            }
            if rng.maybe() {
                let v = [-1.5, 0.0, 2.5, 2000.0, 3.0][rng.below(5)];
                indexed.insert("CustomDouble".into(), IndexedValue::Double(v));
            }
            if rng.maybe() {
                let t = at(1_893_456_000 + rng.below(3) as i64 * 86_400, 0);
                indexed.insert("CustomDatetime".into(), IndexedValue::Datetime(t));
            }
            for name in ["BuildIds", "TemporalChangeVersion"] {
                if rng.maybe() {
                    let items = (0..rng.below(3))
                        .map(|_| rng.pick(&["b1", "b2", "b3", "v2"]).to_string())
                        .collect();
                    indexed.insert(name.into(), IndexedValue::KeywordList(items));
                }
            }
            VisibilityRow {
                namespace_id: "ns".into(),
                run_id: format!("run-{i:03}"),
                workflow_id: format!(
                    "{}-{i}",
                    rng.pick(&["order", "a", "m", "refund", "daily", "x"])
                ),
                workflow_type: rng.pick(&["Checkout", "Refund", "a"]).into(),
                task_queue: rng.pick(&["payments", "q"]).into(),
                status: if closed { 2 + rng.below(6) as i32 } else { 1 },
                start_time: start,
                execution_time: start,
                close_time: closed.then(|| at(start.seconds + rng.below(20_000) as i64, 0)),
                execution_duration: closed
                    .then(|| rng.below(20_000) as i64 * 1_000_000_000 + rng.below(1000) as i64),
                history_length: rng.below(20) as i64,
                history_size_bytes: rng.below(5000) as i64,
                state_transition_count: rng.below(10) as i64,
                parent_workflow_id: rng.maybe().then(|| "parent".to_string()),
                parent_run_id: None,
                root_workflow_id: "root".into(),
                root_run_id: format!("root-{}", rng.below(2)),
                memo: Vec::new(),
                search_attributes: Vec::new(),
                indexed,
            }
        })
        .collect()
}

const MORE: &[&str] = &[
    "CustomKeyword != 'gold'",
    "NOT (CustomKeyword = 'gold')",
    "CustomKeyword IN ('gold', 'x') OR CustomInt >= 2",
    "NOT (CustomKeyword IN ('gold', 'x'))",
    "CustomKeyword STARTS_WITH 'quo' OR CustomKeyword STARTS_WITH ''",
    "CustomKeyword NOT STARTS_WITH 'g'",
    "CustomKeyword BETWEEN 'a' AND 'h'",
    "CustomKeyword NOT BETWEEN 'a' AND 'h'",
    "CustomKeyword IS NULL OR CustomKeyword = ''",
    "BuildIds = 'b1'",
    "BuildIds != 'b1'",
    "BuildIds IN ('b2', 'b3')",
    "BuildIds NOT IN ('b2', 'b3')",
    "BuildIds IS NULL",
    "BuildIds IS NOT NULL AND NOT (BuildIds = 'b2')",
    "CustomText = 'quick cat'",
    "CustomText = 'FOX'",
    "CustomText != 'fox'",
    "CustomText IS NULL",
    "CustomInt < 0 OR CustomInt > 3",
    "NOT (CustomInt BETWEEN -1 AND 1)",
    "CustomInt IN (1, 2, 3)",
    "CustomInt = 2.0",
    "CustomDouble >= 2.5",
    "CustomDouble = 3",
    "CustomBool = true",
    "CustomBool != false",
    "NOT CustomBool = true",
    "CustomDatetime > '2030-01-01T12:00:00Z'",
    "CustomDatetime = '2030-01-02T00:00:00Z'",
    "ExecutionStatus = 'Running'",
    "ExecutionStatus IN ('Completed', 'Failed', 4)",
    "ExecutionStatus != 'Running' AND CloseTime IS NOT NULL",
    "CloseTime IS NULL",
    "CloseTime > '2024-01-01T12:00:00Z'",
    "ExecutionDuration > '1h'",
    "ExecutionDuration BETWEEN '00:10:00' AND '2h'",
    "ExecutionDuration IS NULL",
    "StartTime > '2024-01-01T10:00:00.5Z' AND StartTime < '2024-01-01T20:00:00Z'",
    "StartTime >= 1704100000000000000",
    "WorkflowId STARTS_WITH 'order-'",
    "WorkflowId > 'm' AND WorkflowId < 'r'",
    "WorkflowType IN ('Checkout', 'Refund') AND TaskQueue = 'payments'",
    "HistoryLength >= 10 OR HistorySizeBytes < 100",
    "StateTransitionCount BETWEEN 2 AND 4",
    "ParentWorkflowId IS NULL",
    "ParentWorkflowId = 'parent'",
    "RootRunId = 'root-1'",
    "ParentRunId IS NOT NULL",
];

#[test]
fn sqlite_lists_what_the_filter_means() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(TABLE).unwrap();
    let rows = generated_runs(300);
    for row in &rows {
        conn.execute(UPSERT, rusqlite::params_from_iter(upsert_params(row)))
            .unwrap();
    }
    let reference = include_str!("../../visibility/reference.tsv");
    let accepted = reference
        .lines()
        .filter_map(|l| l.strip_prefix("OK\t"))
        .collect::<Vec<_>>();
    let attributes = attributes();
    let mut checked = 0;
    for query in accepted.iter().chain(MORE) {
        let parsed = parse(query, &attributes).unwrap_or_else(|e| panic!("{query}: {e}"));
        let Some(filter) = parsed.filter else {
            continue;
        };
        let expected: Vec<&str> = rows
            .iter()
            .filter(|r| r.matches(&filter))
            .map(|r| r.run_id.as_str())
            .collect();
        let (condition, params) = condition(&filter);
        let sql =
            format!("SELECT run_id FROM executions_visibility WHERE {condition} ORDER BY run_id");
        let mut statement = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let listed: Vec<String> = statement
            .query_map(rusqlite::params_from_iter(params), |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(listed, expected, "{query}\n{sql}");
        checked += 1;
    }
    assert!(checked > 80, "{checked} queries checked");
    // The generated runs make the filters choose: most queries list some runs, not all.
    let all = rows.len();
    let choosing = MORE
        .iter()
        .filter(|q| {
            let f = parse(q, &attributes).unwrap().filter.unwrap();
            let n = rows.iter().filter(|r| r.matches(&f)).count();
            n > 0 && n < all
        })
        .count();
    assert!(choosing >= MORE.len() - 3, "only {choosing} queries choose");
}
