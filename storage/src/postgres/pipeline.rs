//! Statements sent to the server together. `tokio-postgres` pipelines the requests of one
//! connection: a request is sent when its future is first polled, and the server runs them
//! in that order. A [`Pipeline`] prepares its statements, then polls them all at once, so a
//! transaction's statements (its `BEGIN` and `COMMIT` included) cost one round trip instead of
//! one each.

use std::future::Future;
use std::pin::Pin;

use deadpool_postgres::ClientWrapper;
use deadpool_postgres::tokio_postgres::types::ToSql;
use deadpool_postgres::tokio_postgres::{self, Row};
use futures_util::future::join_all;

/// One statement parameter, owned.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// The answer of one statement.
pub(super) type Answer = Result<Vec<Row>, tokio_postgres::Error>;

enum Step {
    /// A prepared statement and its parameters.
    Prepared(&'static str, Vec<Param>),
    /// A parameterless command (`BEGIN`, `COMMIT`) in the simple protocol.
    Simple(&'static str),
}

/// Statements to run in order, in one round trip.
#[derive(Default)]
pub(super) struct Pipeline {
    steps: Vec<Step>,
}

impl Pipeline {
    /// Appends a statement and its parameters.
    pub(super) fn push(&mut self, sql: &'static str, params: Vec<Param>) {
        self.steps.push(Step::Prepared(sql, params));
    }

    /// Appends a parameterless command.
    pub(super) fn push_simple(&mut self, sql: &'static str) {
        self.steps.push(Step::Simple(sql));
    }

    /// Puts a parameterless command before every statement.
    pub(super) fn prepend_simple(&mut self, sql: &'static str) {
        self.steps.insert(0, Step::Simple(sql));
    }

    /// How many statements it holds.
    pub(super) fn len(&self) -> usize {
        self.steps.len()
    }

    /// Runs every statement on `client`, in order, and returns every answer, in order.
    /// Statements are prepared first (from the connection's cache, once warm); a failure to
    /// prepare is the only answer, and then nothing was run. The pipeline can run again.
    pub(super) async fn run(&self, client: &ClientWrapper) -> Vec<Answer> {
        let prepared = join_all(self.steps.iter().filter_map(|step| match step {
            Step::Prepared(sql, _) => Some(client.prepare_cached(sql)),
            Step::Simple(_) => None,
        }))
        .await;
        let mut statements = Vec::with_capacity(prepared.len());
        for statement in prepared {
            match statement {
                Ok(statement) => statements.push(statement),
                Err(e) => return vec![Err(e)],
            }
        }
        let mut statements = statements.iter();
        let mut answers: Vec<Pin<Box<dyn Future<Output = Answer> + Send + '_>>> =
            Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            match step {
                Step::Prepared(_, params) => {
                    let statement = statements.next().expect("one statement per step");
                    let params: Vec<&(dyn ToSql + Sync)> = params
                        .iter()
                        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                        .collect();
                    answers.push(Box::pin(
                        async move { client.query(statement, &params).await },
                    ));
                }
                Step::Simple(sql) => answers.push(Box::pin(async move {
                    client.batch_execute(sql).await.map(|()| Vec::new())
                })),
            }
        }
        join_all(answers).await
    }
}

/// Boxes statement parameters: `params![a, b]`.
macro_rules! params {
    ($($param:expr),* $(,)?) => {
        vec![$(Box::new($param) as $crate::postgres::pipeline::Param),*]
    };
}
pub(super) use params;
