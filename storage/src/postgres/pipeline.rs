//! Statements sent to the server together. `tokio-postgres` pipelines the requests of one
//! connection: a request is sent when its future is first polled, and the server runs them
//! in that order. A [`Pipeline`] prepares its statements, then polls them all at once, so a
//! transaction's independent statements cost one round trip instead of one each.

use deadpool_postgres::Transaction;
use deadpool_postgres::tokio_postgres::types::ToSql;
use deadpool_postgres::tokio_postgres::{self, Row};
use futures_util::future::join_all;

/// One statement parameter, owned.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// Statements to run in order, in one round trip.
#[derive(Default)]
pub(super) struct Pipeline {
    steps: Vec<(&'static str, Vec<Param>)>,
}

impl Pipeline {
    /// Appends a statement and its parameters.
    pub(super) fn push(&mut self, sql: &'static str, params: Vec<Param>) {
        self.steps.push((sql, params));
    }

    /// Runs every statement inside `tx`, in order, and returns their rows, in order. When
    /// statements fail, the error of the first one is returned (the later ones only fail
    /// because the transaction is aborted by then).
    pub(super) async fn run(
        self,
        tx: &Transaction<'_>,
    ) -> Result<Vec<Vec<Row>>, tokio_postgres::Error> {
        let prepared = join_all(self.steps.iter().map(|(sql, _)| tx.prepare_cached(sql))).await;
        let statements = prepared.into_iter().collect::<Result<Vec<_>, _>>()?;
        let params: Vec<Vec<&(dyn ToSql + Sync)>> = self
            .steps
            .iter()
            .map(|(_, params)| {
                params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect()
            })
            .collect();
        let answers = join_all(
            statements
                .iter()
                .zip(&params)
                .map(|(statement, params)| tx.query(statement, params)),
        )
        .await;
        answers.into_iter().collect()
    }
}

/// Boxes statement parameters: `params![a, b]`.
macro_rules! params {
    ($($param:expr),* $(,)?) => {
        vec![$(Box::new($param) as $crate::postgres::pipeline::Param),*]
    };
}
pub(super) use params;
