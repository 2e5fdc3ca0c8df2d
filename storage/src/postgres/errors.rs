//! How driver and pool failures become [`Error`]s, and how a commit whose answer was lost is
//! settled.
//!
//! Before `COMMIT` is sent nothing of a transaction can be stored (the server rolls back a
//! transaction whose connection goes away), so a lost connection, a full pool, a restarting
//! server or a deadlock victim is [`Error::Unavailable`]: safe to retry. Once `COMMIT` was sent
//! the outcome is unknown until it is read back: every write transaction learns its
//! transaction id (`txid_current()`) before it commits, and [`settle`] asks the server what
//! became of it (`txid_status`) on another connection. Only when that cannot be learnt is the
//! answer [`Error::Backend`] (outcome unknown). A commit is never retried blindly.

use std::time::Duration;

use deadpool_postgres::tokio_postgres::error::{Severity, SqlState};
use deadpool_postgres::{Object, Pool, PoolError, tokio_postgres};

use crate::{Error, Result};

/// How long [`settle`] keeps asking before it gives up and reports an unknown outcome.
const SETTLE_DEADLINE: Duration = Duration::from_secs(30);
/// First and longest pause between two questions of [`settle`].
const SETTLE_FIRST_PAUSE: Duration = Duration::from_millis(20);
const SETTLE_LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// True when `e` is about the connection rather than about the statement: the socket failed
/// or closed, or the connection attempt did.
pub(super) fn connection_failed(e: &tokio_postgres::Error) -> bool {
    use std::error::Error as _;
    e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("timeout waiting for server")
}

/// Gives `client` back to the pool, unless one of `failures` says its connection broke: then
/// it is closed instead. The pool checks only whether the driver has seen the connection end,
/// which it may not have yet when the failure reaches the caller, so a broken connection could
/// otherwise be handed to the very next call (the retry of the call that just failed).
pub(super) fn release<'a>(
    client: Object,
    failures: impl IntoIterator<Item = &'a tokio_postgres::Error>,
) {
    if failures.into_iter().any(|e| !refused_by_server(e)) {
        drop(Object::take(client));
    }
}

/// True for server errors after which the same call may succeed and nothing was written:
/// connection trouble, a shutting-down or starting server, too many connections, a
/// serialization failure or deadlock victim.
fn transient(code: &SqlState) -> bool {
    let code = code.code();
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01" | "55P03"
        )
}

/// `e` with its causes (the driver's own message names only the kind of failure), on one line.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string().replace('\n', "; "));
        source = cause.source();
    }
    text
}

/// A failure of a statement that ran before any `COMMIT` was sent.
pub(super) fn statement(e: tokio_postgres::Error) -> Error {
    let text = describe(&e);
    if connection_failed(&e) || e.code().is_some_and(transient) {
        Error::Unavailable(format!("postgres: {text}"))
    } else {
        Error::Backend(format!("postgres: {text}"))
    }
}

/// True when the server answered a statement with an `ERROR`: the statement did nothing and
/// the transaction can no longer commit. (A `FATAL` error ends the session instead, and a
/// connection failure says nothing about what the server did.)
pub(super) fn refused_by_server(e: &tokio_postgres::Error) -> bool {
    e.as_db_error()
        .is_some_and(|db| db.parsed_severity() == Some(Severity::Error))
}

/// True when `e` is a unique-key violation.
pub(super) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A failure to get a pooled connection: nothing was sent, so it is always retryable.
pub(super) fn pool(e: PoolError, target: &str) -> Error {
    match e {
        PoolError::Timeout(_) => Error::Unavailable(format!(
            "{target}: no connection became free or could be opened in time"
        )),
        PoolError::Backend(e) => {
            Error::Unavailable(format!("{target}: cannot connect: {}", connect_cause(&e)))
        }
        other => Error::Unavailable(format!("{target}: {other}")),
    }
}

/// What went wrong connecting, with a hint where one helps.
pub(super) fn connect_cause(e: &tokio_postgres::Error) -> String {
    match e.code() {
        Some(code) if *code == SqlState::INVALID_CATALOG_NAME => format!(
            "{} (`sundial schema setup` creates it when the user may create databases)",
            describe(e)
        ),
        _ => describe(e),
    }
}

/// The outcome of a `COMMIT` that failed with `cause`, for the transaction `txn`
/// (`"<txid>@<start time of the server that ran it>"`).
///
/// A server that answered the `COMMIT` with an `ERROR` rolled the transaction back. Otherwise
/// (the connection failed, or the server ended the session with a `FATAL` error) the answer was
/// lost and the outcome is read back with `txid_status` on a fresh connection
/// until the server says committed or aborted, for at most [`SETTLE_DEADLINE`]. A server that
/// restarted since cannot say: a transaction whose records had not reached its WAL is gone, and
/// its id may have been given to a new transaction since (whose status `txid_status` reports),
/// so the outcome is unknown ([`Error::Backend`]) and the caller reads the store again.
pub(super) async fn settle(pool: &Pool, txn: &str, cause: tokio_postgres::Error) -> Result<()> {
    if refused_by_server(&cause) {
        return Err(statement(cause));
    }
    let (xid, server_start) = txn
        .split_once('@')
        .and_then(|(xid, start)| Some((xid.parse::<i64>().ok()?, start)))
        .ok_or_else(|| Error::Backend(format!("postgres: malformed transaction id {txn:?}")))?;
    let deadline = tokio::time::Instant::now() + SETTLE_DEADLINE;
    let mut pause = SETTLE_FIRST_PAUSE;
    let cause = describe(&cause);
    loop {
        let last = match transaction_status(pool, xid).await {
            Ok((_, started)) if started != server_start => {
                return Err(Error::Backend(format!(
                    "postgres: connection lost during COMMIT ({cause}); the server restarted \
                     since (at {started}), so the outcome is unknown"
                )));
            }
            Ok((Some(status), _)) if status == "committed" => return Ok(()),
            Ok((Some(status), _)) if status == "aborted" => {
                return Err(Error::Unavailable(format!(
                    "postgres: connection lost during COMMIT ({cause}); the transaction was \
                     rolled back"
                )));
            }
            Ok((Some(status), _)) => format!("transaction {xid} is {status}"),
            Ok((None, _)) => {
                return Err(Error::Backend(format!(
                    "postgres: connection lost during COMMIT ({cause}); the server no longer \
                     knows transaction {xid}: outcome unknown"
                )));
            }
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() + pause > deadline {
            return Err(Error::Backend(format!(
                "postgres: connection lost during COMMIT ({cause}); outcome unknown ({last})"
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(SETTLE_LONGEST_PAUSE);
    }
}

/// `txid_status` of `xid` on a pooled connection (committed, aborted, in progress, or `None`
/// when the server no longer knows it), and when that server started.
async fn transaction_status(pool: &Pool, xid: i64) -> Result<(Option<String>, String)> {
    let client = pool.get().await.map_err(|e| self::pool(e, "postgres"))?;
    let answer = client
        .query_one(
            "SELECT txid_status($1), pg_postmaster_start_time()::text",
            &[&xid],
        )
        .await;
    release(client, answer.as_ref().err());
    let row = answer.map_err(statement)?;
    Ok((
        row.try_get(0).map_err(statement)?,
        row.try_get(1).map_err(statement)?,
    ))
}
