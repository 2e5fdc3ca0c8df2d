//! The SQL of every filter lists, on a real SQLite, exactly the runs `VisibilityRow::matches`
//! lists, over the generated runs of `visibility::tests` and its oracle's filters.

use rusqlite::Connection;

use super::*;
use crate::visibility::tests::{expected_runs, generated_runs, oracle_filters};

#[test]
fn sqlite_lists_what_the_filter_means() {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(TABLE).unwrap();
    let rows = generated_runs(300);
    for row in &rows {
        conn.execute(UPSERT, rusqlite::params_from_iter(upsert_params(row)))
            .unwrap();
    }
    for (query, filter) in oracle_filters() {
        let (condition, params) = condition(&filter);
        let sql =
            format!("SELECT run_id FROM executions_visibility WHERE {condition} ORDER BY run_id");
        let mut statement = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        let listed: Vec<String> = statement
            .query_map(rusqlite::params_from_iter(params), |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(listed, expected_runs(&filter, &rows), "{query}\n{sql}");
    }
}
