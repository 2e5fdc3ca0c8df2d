//! `sundial server start` and `sundial schema` on PostgreSQL and MariaDB (standing in for MySQL
//! 8): the sample configs, pointed at private servers the tests start, set up with `sundial
//! schema setup` and serving a workflow; and every way a datastore can fail to open refused
//! with its own message (the datastore, its address and the cause) and a non-zero exit.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use sundial_proto::api::enums::v1::EventType;
use sundial_testdb::{mariadb as my, postgres as pg};
use sundial_tests::Worker;
use sundial_tests::databases::{fresh_database, mariadb, postgres};
use sundial_tests::process::free_port;
use sundial_tests::sample::TestConfig;
use sundial_tests::worker::{commands, secs};

/// A database server kind the tests run against.
#[derive(Clone, Copy)]
enum Db {
    Postgres,
    Mariadb,
}

impl Db {
    /// The sample config for this kind, and its datastore's name.
    fn sample(self) -> (&'static str, &'static str) {
        match self {
            Db::Postgres => ("development-postgres.yaml", "postgres-default"),
            Db::Mariadb => ("development-mysql.yaml", "mysql-default"),
        }
    }

    /// The server's `host:port`, user and password.
    fn login(self) -> Result<(String, &'static str, &'static str)> {
        Ok(match self {
            Db::Postgres => (postgres()?.address(), pg::USER, pg::PASSWORD),
            Db::Mariadb => (mariadb()?.address(), my::USER, my::PASSWORD),
        })
    }

    /// The sample config on `database` of the private server, with `set` applied last.
    fn config(self, database: &str, set: &[(&str, &str)]) -> Result<TestConfig> {
        let (address, user, password) = self.login()?;
        let mut keys = vec![
            ("connectAddr", address.as_str()),
            ("databaseName", database),
            ("user", user),
            ("password", password),
        ];
        keys.retain(|(key, _)| !set.iter().any(|(k, _)| k == key));
        keys.extend_from_slice(set);
        TestConfig::sample(self.sample().0, &keys)
    }

    /// Runs `statements` as the superuser: in the server's maintenance database, then (after
    /// `CREATE DATABASE`) in `database`.
    fn create_database_with(self, database: &str, statements: &str) -> Result<()> {
        let outcome = match self {
            Db::Postgres => {
                let server = postgres()?;
                server
                    .sql("postgres", &format!("CREATE DATABASE {database}"))
                    .and_then(|_| server.sql(database, statements))
            }
            Db::Mariadb => {
                let server = mariadb()?;
                server
                    .sql(None, &format!("CREATE DATABASE {database}"))
                    .and_then(|_| server.sql(Some(database), statements))
            }
        };
        outcome.map(drop).map_err(anyhow::Error::msg)
    }

    /// SQL that leaves a schema older than any build's: a `schema_version` of 0.
    fn old_schema(self) -> &'static str {
        match self {
            Db::Postgres => {
                "CREATE TABLE schema_version (version bigint NOT NULL); \
                 INSERT INTO schema_version (version) VALUES (0)"
            }
            Db::Mariadb => {
                "CREATE TABLE schema_version (id TINYINT NOT NULL PRIMARY KEY, version BIGINT \
                 NOT NULL); INSERT INTO schema_version (id, version) VALUES (1, 0)"
            }
        }
    }
}

/// `server start` on `config` is refused naming the datastore, and saying each of `causes`.
fn assert_refused_open(db: Db, dir: &Path, config: &TestConfig, causes: &[&str]) -> Result<()> {
    let output = config.refused_start(dir)?;
    let (_, name) = db.sample();
    ensure!(
        output.contains(&format!("cannot open datastore \"{name}\"")),
        "the datastore is not named:\n{output}"
    );
    for cause in causes {
        ensure!(
            output.contains(cause),
            "{cause:?} is not in the message:\n{output}"
        );
    }
    Ok(())
}

/// Starts, runs and completes a one-activity workflow through the raw worker.
async fn run_a_workflow(mut worker: Worker) -> Result<()> {
    use EventType::*;
    worker.start("on-a-database").await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(
            task.task_token,
            vec![commands::schedule_activity(
                "a1",
                &worker.task_queue.clone(),
                secs(30),
            )],
        )
        .await?;
    let activity = worker.poll_activity_task().await?;
    worker
        .complete_activity_task(activity.task_token, b"done")
        .await?;
    let task = worker.poll_workflow_task().await?;
    worker
        .complete_workflow_task(task.task_token, vec![commands::complete_workflow(b"ok")])
        .await?;
    let types = worker.event_types("on-a-database").await?;
    ensure!(
        types.last() == Some(&WorkflowExecutionCompleted) && types.contains(&ActivityTaskCompleted),
        "unexpected history: {types:?}"
    );
    Ok(())
}

/// `sundial schema setup`, then `sundial server start` on the sample config, then a workflow.
async fn setup_then_serve(db: Db) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let database = fresh_database();
    let config = db.config(&database, &[])?;
    let schema = |action| config.run(dir.path(), &["schema", action], &[]);

    let (ok, output) = schema("setup")?;
    ensure!(ok, "schema setup failed:\n{output}");
    ensure!(
        output.contains("created the database; schema set up at version"),
        "{output}"
    );
    let (ok, output) = schema("setup")?;
    ensure!(
        ok && output.contains("already at schema version"),
        "{output}"
    );
    let (ok, output) = schema("version")?;
    ensure!(ok && output.contains("(current)"), "{output}");

    let (mut process, client) = config.serve(dir.path(), &[]).await?;
    run_a_workflow(Worker::new(client)).await?;
    process.kill()?;
    Ok(())
}

/// The four roles as four `server start --config FILE --services ROLE` processes on one
/// database: they find each other through its membership table, and a workflow runs through
/// the frontend process.
async fn four_processes_serve(db: Db) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = db.config(&fresh_database(), &[])?;
    let (ok, output) = config.run(dir.path(), &["schema", "setup"], &[])?;
    ensure!(ok, "schema setup failed:\n{output}");
    let mut processes = Vec::new();
    for role in ["history", "matching", "worker", "frontend"] {
        // One config per process: the same but for the Prometheus listener, one per process.
        let text = config
            .text
            .lines()
            .map(
                |line| match line.trim_start().strip_prefix("listenAddress:") {
                    Some(_) => format!("      listenAddress: 127.0.0.1:{}", free_port().unwrap()),
                    None => line.to_string(),
                },
            )
            .collect::<Vec<_>>()
            .join("\n");
        let file = dir.path().join(format!("{role}.yaml"));
        std::fs::write(&file, text)?;
        let file = file.to_string_lossy().into_owned();
        let args = ["server", "start", "--config", &file, "--services", role];
        let log = dir.path().join(format!("{role}.log"));
        processes.push(sundial_tests::process::SundialProcess::spawn(
            &args,
            config.frontend(),
            &log,
        )?);
    }
    let frontend = processes.last_mut().expect("four processes");
    let client = frontend.wait_ready().await?;
    let logs = frontend.logs();
    ensure!(
        logs.contains("services: frontend"),
        "the frontend's log lines do not name its role:\n{logs}"
    );
    let outcome = run_a_workflow(Worker::new(client)).await;
    for process in &mut processes {
        process.kill()?;
    }
    outcome.with_context(|| {
        let logs: Vec<String> = processes.iter().map(|p| p.logs()).collect();
        format!("the processes' logs:\n{}", logs.join("\n"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_four_processes_one_per_role_serve_a_workflow() -> Result<()> {
    four_processes_serve(Db::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_four_processes_one_per_role_serve_a_workflow() -> Result<()> {
    four_processes_serve(Db::Mariadb).await
}

/// Nothing listens at the configured address.
fn unreachable_address(db: Db) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let closed = format!("127.0.0.1:{}", free_port()?);
    let config = db.config(&fresh_database(), &[("connectAddr", &closed)])?;
    assert_refused_open(db, dir.path(), &config, &[&closed, "Connection refused"])
}

/// The server refuses the password.
fn wrong_password(db: Db, cause: &str) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = db.config(&fresh_database(), &[("password", "not-the-password")])?;
    assert_refused_open(db, dir.path(), &config, &[cause])
}

/// The database does not exist: without `--auto-setup` the message names `sundial schema
/// setup`; with it the server creates the database and serves.
async fn missing_database(db: Db) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = db.config(&fresh_database(), &[])?;
    assert_refused_open(
        db,
        dir.path(),
        &config,
        &["does not exist", "`sundial schema setup`"],
    )?;

    let (mut process, client) = config.serve(dir.path(), &["--auto-setup"]).await?;
    Worker::new(client).start("after-auto-setup").await?;
    process.kill()?;
    Ok(())
}

/// The database exists but holds no schema.
fn empty_schema(db: Db) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let database = fresh_database();
    db.create_database_with(&database, "SELECT 1")?;
    let config = db.config(&database, &[])?;
    assert_refused_open(db, dir.path(), &config, &["run `sundial schema setup`"])
}

/// The schema is older than this build's: refused naming `sundial schema update`, which then
/// brings it up to date.
fn old_schema(db: Db) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let database = fresh_database();
    db.create_database_with(&database, db.old_schema())?;
    let config = db.config(&database, &[])?;
    assert_refused_open(db, dir.path(), &config, &["run `sundial schema update`"])?;

    let schema = |action| config.run(dir.path(), &["schema", action], &[]);
    let (ok, output) = schema("version")?;
    ensure!(ok && output.contains("holds schema version 0"), "{output}");
    let (ok, output) = schema("setup")?;
    ensure!(
        !ok && output.contains("run `sundial schema update`"),
        "{output}"
    );
    let (ok, output) = schema("update")?;
    ensure!(
        ok && output.contains("schema updated from version 0 to"),
        "{output}"
    );
    let (ok, output) = schema("version")?;
    ensure!(ok && output.contains("(current)"), "{output}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_setup_then_server_start_serves_a_workflow() -> Result<()> {
    setup_then_serve(Db::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_schema_setup_then_server_start_serves_a_workflow() -> Result<()> {
    setup_then_serve(Db::Mariadb).await
}

#[test]
fn postgres_unreachable_address_is_refused() -> Result<()> {
    unreachable_address(Db::Postgres)
}

#[test]
fn mariadb_unreachable_address_is_refused() -> Result<()> {
    unreachable_address(Db::Mariadb)
}

#[test]
fn postgres_wrong_password_is_refused() -> Result<()> {
    wrong_password(Db::Postgres, "password authentication failed")
}

#[test]
fn mariadb_wrong_password_is_refused() -> Result<()> {
    wrong_password(Db::Mariadb, "Access denied")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_missing_database_needs_schema_setup_or_auto_setup() -> Result<()> {
    missing_database(Db::Postgres).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_missing_database_needs_schema_setup_or_auto_setup() -> Result<()> {
    missing_database(Db::Mariadb).await
}

#[test]
fn postgres_empty_schema_is_refused() -> Result<()> {
    empty_schema(Db::Postgres)
}

#[test]
fn mariadb_empty_schema_is_refused() -> Result<()> {
    empty_schema(Db::Mariadb)
}

#[test]
fn postgres_old_schema_is_refused_until_updated() -> Result<()> {
    old_schema(Db::Postgres)
}

#[test]
fn mariadb_old_schema_is_refused_until_updated() -> Result<()> {
    old_schema(Db::Mariadb)
}
