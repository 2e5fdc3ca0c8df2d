//! A write transaction on a pooled connection whose `BEGIN` and `COMMIT` ride in the round
//! trips of its statements: [`WriteTransaction::begin`] sends `BEGIN` with the first
//! statements, [`WriteTransaction::commit`] sends the last ones with `COMMIT`. A write then costs
//! two round trips: the reads that decide it, and the writes.
//!
//! Every write transaction reads its id (`txid_current()`, with the start time of the server
//! running it: see `errors::settle`) among its first statements, so a
//! `COMMIT` whose answer is lost can be settled (see `errors::settle`). A transaction dropped
//! before it commits (an error, or the caller gone) is rolled back before its connection goes
//! back to the pool.

use deadpool_postgres::tokio_postgres::{self, Row};
use deadpool_postgres::{Object, Pool};

use super::errors;
use super::pipeline::{Answer, Pipeline};
use crate::{Error, Result};

/// An open transaction; dropping it rolls it back.
pub(super) struct WriteTransaction {
    /// `None` once the transaction has ended.
    client: Option<Object>,
}

impl WriteTransaction {
    /// Begins a transaction on `client` and runs `first` in it, in one round trip. Returns the
    /// rows of each statement of `first`, or the first failure (the transaction is then rolled
    /// back).
    pub(super) async fn begin(
        client: Object,
        mut first: Pipeline,
    ) -> std::result::Result<(Self, Vec<Vec<Row>>), tokio_postgres::Error> {
        first.prepend_simple("BEGIN");
        let statements = first.len();
        let tx = WriteTransaction {
            client: Some(client),
        };
        let answers = first.run(tx.client()).await;
        if answers.len() != statements {
            return Err(first_failure(answers));
        }
        // The answer to `BEGIN` carries no rows.
        let rows = answers
            .into_iter()
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok((tx, rows.into_iter().skip(1).collect()))
    }

    /// The transaction's connection, for a statement that needs its own round trip.
    pub(super) fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("an open transaction has its connection")
    }

    /// Runs `last` and `COMMIT`, in one round trip, and settles the outcome of the transaction
    /// whose id is `xid`. A statement the server refuses rolls the transaction back and fails
    /// with `refused(error)`; a connection that fails on the way leaves the outcome to be read
    /// back from the server.
    pub(super) async fn commit(
        mut self,
        mut last: Pipeline,
        xid: String,
        pool: &Pool,
        refused: impl FnOnce(tokio_postgres::Error) -> Error,
    ) -> Result<()> {
        let writes = last.len();
        last.push_simple("COMMIT");
        let client = self
            .client
            .take()
            .expect("an open transaction has its connection");
        let mut answers = last.run(&client).await;
        if answers.len() != writes + 1 {
            // Preparing failed, nothing was sent: still open, rolled back on drop.
            self.client = Some(client);
            return Err(refused(first_failure(answers)));
        }
        // `COMMIT` was sent: the transaction has ended one way or the other, so the connection
        // may go back to the pool (a broken one is closed) before settling needs one.
        errors::release(client, answers.iter().filter_map(|a| a.as_ref().err()));
        let commit = answers.pop().unwrap_or(Ok(Vec::new()));
        match answers.into_iter().find_map(std::result::Result::err) {
            // A refused write aborted the transaction: its COMMIT rolled back.
            Some(e) if errors::refused_by_server(&e) => Err(refused(e)),
            Some(e) => errors::settle(pool, &xid, e).await,
            None => match commit {
                Ok(_) => Ok(()),
                Err(e) => errors::settle(pool, &xid, e).await,
            },
        }
    }
}

/// The failure among `answers` (the first one).
fn first_failure(answers: Vec<Answer>) -> tokio_postgres::Error {
    answers
        .into_iter()
        .find_map(std::result::Result::err)
        .expect("a failed pipeline has a failure")
}

impl Drop for WriteTransaction {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        // Roll back before the connection is reused; a connection that cannot be rolled back
        // (or no runtime to do it on) is closed instead of going back to the pool.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if client.batch_execute("ROLLBACK").await.is_err() {
                        drop(Object::take(client));
                    }
                });
            }
            Err(_) => drop(Object::take(client)),
        }
    }
}
