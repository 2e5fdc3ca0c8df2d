//! The SQL of every filter lists, on a private MariaDB, exactly the runs
//! `VisibilityRow::matches` lists, over the generated runs of `visibility::tests` and its
//! oracle's filters.

use std::path::PathBuf;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use sundial_testdb::mariadb::{PASSWORD, Server, USER};

use super::*;
use crate::visibility::tests::{expected_runs, generated_runs, oracle_filters};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_lists_what_the_filter_means() {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<binary>: servers live in target/tmp.
    let root: PathBuf = exe.ancestors().nth(3).expect("inside target/").join("tmp");
    let server = tokio::task::block_in_place(|| Server::start(&root, "visibility-oracle"))
        .expect("private MariaDB server");
    server
        .sql(None, "CREATE DATABASE visibility_oracle")
        .expect("creating the database");
    let opts = OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(server.port)
        .prefer_socket(false)
        .user(Some(USER))
        .pass(Some(PASSWORD))
        .db_name(Some("visibility_oracle"));
    let mut conn = Conn::new(opts).await.unwrap();
    conn.query_drop(TABLE).await.unwrap();
    let rows = generated_runs(300);
    for row in &rows {
        conn.exec_drop(UPSERT, upsert_params(row)).await.unwrap();
    }
    for (query, filter) in oracle_filters() {
        let (condition, params) = condition(&filter);
        let sql =
            format!("SELECT run_id FROM executions_visibility WHERE {condition} ORDER BY run_id");
        let listed: Vec<Vec<u8>> = conn
            .exec(&sql, params)
            .await
            .unwrap_or_else(|e| panic!("{query}\n{sql}: {e}"));
        let listed: Vec<String> = listed
            .into_iter()
            .map(|id| String::from_utf8(id).unwrap())
            .collect();
        assert_eq!(listed, expected_runs(&filter, &rows), "{query}\n{sql}");
    }
}
