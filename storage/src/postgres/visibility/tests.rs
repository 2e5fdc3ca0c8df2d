//! The SQL of every filter lists, on a private PostgreSQL, exactly the runs
//! `VisibilityRow::matches` lists, over the generated runs of `visibility::tests` and its
//! oracle's filters.

use super::*;
use crate::postgres::plans::private_session;
use crate::visibility::tests::{expected_runs, generated_runs, oracle_filters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lists_what_the_filter_means() {
    let (_server, client, _) = private_session("visibility_oracle").await;
    client.batch_execute(TABLE).await.unwrap();
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
