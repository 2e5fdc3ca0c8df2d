//! The SQL of every filter lists, on a private PostgreSQL, exactly the runs
//! `VisibilityRow::matches` lists, over the generated runs of `visibility::tests` and its
//! oracle's filters.

use super::*;
use crate::postgres::plans::private_session;
use crate::visibility::tests::{attributes, expected_runs, generated_runs, oracle_filters};

/// The table with every custom attribute of the oracle indexed, and `CustomKeyword` indexed as
/// an Int too (its values are strings: the index must take them).
async fn indexed_table(client: &deadpool_postgres::tokio_postgres::Client) {
    client.batch_execute(TABLE).await.unwrap();
    let mut indexes: Vec<_> = attributes().into_iter().collect();
    indexes.push(("CustomKeyword".into(), ValueType::Int));
    for (name, value_type) in indexes {
        if let Some(sql) = attribute_index(&name, value_type) {
            client.batch_execute(&sql).await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_on_an_indexed_custom_attribute_reads_its_index() {
    let (_server, client, _) = private_session("visibility_attribute_index").await;
    indexed_table(&client).await;
    // A small table: make the planner show whether it can use the index at all.
    client
        .batch_execute("SET enable_seqscan = off")
        .await
        .unwrap();
    for (query, name, value_type) in [
        (
            "CustomKeyword = 'gold'",
            "CustomKeyword",
            ValueType::Keyword,
        ),
        ("CustomInt = 3", "CustomInt", ValueType::Int),
        ("CustomBool = true", "CustomBool", ValueType::Bool),
    ] {
        let query = format!("{query} AND TemporalNamespaceDivision IS NULL");
        let filter = crate::visibility::parse(&query, &attributes())
            .unwrap()
            .filter;
        let (sql, params) = list("ns", filter.as_ref(), None, 100);
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let plan: Vec<String> = client
            .query(&format!("EXPLAIN {sql}"), &refs)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let index =
            crate::visibility::columns::attribute_index_name(name, expression_kind(value_type));
        assert!(
            plan.iter().any(|step| step.contains(&index)),
            "{query}: {plan:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lists_what_the_filter_means() {
    let (_server, client, _) = private_session("visibility_oracle").await;
    indexed_table(&client).await;
    let rows = generated_runs(300);
    let upsert = client.prepare(UPSERT).await.unwrap();
    for row in &rows {
        let params = upsert_params(row);
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        client.execute(&upsert, &refs).await.unwrap();
    }
    for (query, filter) in oracle_filters() {
        let (condition, params) = condition(&filter, 1);
        let sql =
            format!("SELECT run_id FROM executions_visibility WHERE {condition} ORDER BY run_id");
        let refs: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let listed: Vec<String> = client
            .query(&sql, &refs)
            .await
            .unwrap_or_else(|e| panic!("{query}\n{sql}: {e:?}"))
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(listed, expected_runs(&filter, &rows), "{query}\n{sql}");
    }
}
