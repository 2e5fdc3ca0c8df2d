//! The SQL of every filter lists, on a real SQLite, exactly the runs `VisibilityRow::matches`
//! lists, over the generated runs of `visibility::tests` and its oracle's filters.

use rusqlite::Connection;

use super::*;
use crate::visibility::tests::{attributes, expected_runs, generated_runs, oracle_filters};

/// The table with every custom attribute of the oracle indexed, and `CustomKeyword` indexed as
/// an Int too (its values are strings: the index must take them).
fn indexed_table(conn: &Connection) {
    conn.execute_batch(TABLE).unwrap();
    let mut indexes: Vec<_> = attributes().into_iter().collect();
    indexes.push(("CustomKeyword".into(), ValueType::Int));
    for (name, value_type) in indexes {
        if let Some(sql) = attribute_index(&name, value_type) {
            conn.execute_batch(&sql).unwrap();
        }
    }
}

#[test]
fn a_filter_on_an_indexed_custom_attribute_reads_its_index() {
    let conn = Connection::open_in_memory().unwrap();
    indexed_table(&conn);
    for (query, name) in [
        ("CustomKeyword = 'gold'", "CustomKeyword"),
        ("CustomInt = 3", "CustomInt"),
    ] {
        let query = format!("{query} AND TemporalNamespaceDivision IS NULL");
        let filter = crate::visibility::parse(&query, &attributes())
            .unwrap()
            .filter;
        let (sql, params) = Positional::<Sql>::list("ns", filter.as_ref(), None, 100);
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(rusqlite::params_from_iter(params), |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let index = crate::visibility::columns::attribute_index_name(name, "json");
        assert!(
            plan.iter().any(|step| step.contains(&index)),
            "{query}: {plan:?}"
        );
    }
}

#[test]
fn sqlite_lists_what_the_filter_means() {
    let conn = Connection::open_in_memory().unwrap();
    indexed_table(&conn);
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
