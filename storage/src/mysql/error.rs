//! What a failed `mysql_async` call means for its caller: whether anything may have been
//! written, and whether the call may be retried.

use mysql_async::{DriverError, FromRowError};

use crate::Error;

/// MySQL's error codes that Sundial tells apart (the same in MySQL 8 and MariaDB).
pub(super) mod code {
    /// `ER_DUP_ENTRY`: an insert found its key taken.
    pub const DUPLICATE_KEY: u16 = 1062;
    /// `ER_LOCK_DEADLOCK`: the server rolled the whole transaction back.
    pub const DEADLOCK: u16 = 1213;
    /// `ER_NO_SUCH_TABLE`.
    pub const NO_SUCH_TABLE: u16 = 1146;
    /// `ER_BAD_DB_ERROR`: no such database.
    pub const NO_SUCH_DATABASE: u16 = 1049;
    /// `ER_DUP_FIELDNAME`: an `ADD COLUMN` found the column there.
    pub const DUPLICATE_COLUMN: u16 = 1060;
}

/// Server errors after which nothing was written and the call can succeed later: the server is
/// busy, restarting, failing over or killed the session.
const TRANSIENT: &[u16] = &[
    1040, // ER_CON_COUNT_ERROR: too many connections
    1053, // ER_SERVER_SHUTDOWN
    1205, // ER_LOCK_WAIT_TIMEOUT
    code::DEADLOCK,
    1290, // ER_OPTION_PREVENTS_STATEMENT: --read-only (a replica, during failover)
    1317, // ER_QUERY_INTERRUPTED
    1836, // ER_READ_ONLY_MODE
    1927, // ER_CONNECTION_KILLED (MariaDB)
    4031, // ER_CLIENT_INTERACTION_TIMEOUT (MySQL 8)
];

/// How far a failed call got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sent {
    /// A read, or a write that failed before its `COMMIT` was sent: the server rolls an
    /// unfinished transaction back, so nothing was written.
    BeforeCommit,
    /// The `COMMIT` was sent: unless the server answered it with an error, the transaction may
    /// or may not have committed.
    Commit,
}

/// The failure of a transaction's body.
#[derive(Debug)]
pub(super) enum TxError {
    /// The store's answer (a fence or a row condition did not hold, a row is unreadable): the
    /// transaction is rolled back and the caller gets this.
    Refused(Error),
    /// The driver or the server failed.
    Db(mysql_async::Error),
}

impl From<mysql_async::Error> for TxError {
    fn from(e: mysql_async::Error) -> Self {
        TxError::Db(e)
    }
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Refused(e)
    }
}

impl From<FromRowError> for TxError {
    fn from(e: FromRowError) -> Self {
        TxError::Refused(Error::Backend(format!("mysql: unreadable row: {e}")))
    }
}

/// Result of a transaction's body and of the statement helpers.
pub(super) type TxResult<T> = std::result::Result<T, TxError>;

/// The server's error code, if the server answered with an error.
pub(super) fn server_code(e: &mysql_async::Error) -> Option<u16> {
    match e {
        mysql_async::Error::Server(server) => Some(server.code),
        _ => None,
    }
}

/// True when the connection broke (refused, reset, closed): the server may not even have seen
/// the last statement.
pub(super) fn connection_lost(e: &mysql_async::Error) -> bool {
    matches!(
        e,
        mysql_async::Error::Io(_)
            | mysql_async::Error::Driver(
                DriverError::ConnectionClosed
                    | DriverError::PoolDisconnected
                    | DriverError::PacketOutOfOrder
            )
    )
}

/// The storage error for `e`, a failure of a call on `target` (`host:port/database`) that got
/// as far as `sent`.
pub(super) fn classify(e: mysql_async::Error, sent: Sent, target: &str) -> Error {
    let transient = server_code(&e).is_some_and(|code| TRANSIENT.contains(&code));
    match sent {
        Sent::BeforeCommit if connection_lost(&e) || transient => {
            Error::Unavailable(format!("mysql {target}: {e}"))
        }
        Sent::Commit if connection_lost(&e) => Error::Backend(format!(
            "mysql {target}: connection lost after COMMIT was sent, outcome unknown: {e}"
        )),
        // The server answered the COMMIT with an error: it did not commit.
        Sent::Commit if transient => {
            Error::Unavailable(format!("mysql {target}: COMMIT refused: {e}"))
        }
        _ => Error::Backend(format!("mysql {target}: {e}")),
    }
}

impl TxError {
    /// The storage error the caller gets.
    pub(super) fn into_error(self, sent: Sent, target: &str) -> Error {
        match self {
            TxError::Refused(e) => e,
            TxError::Db(e) => classify(e, sent, target),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use mysql_async::{IoError, ServerError};

    use super::*;

    fn server(code: u16) -> mysql_async::Error {
        mysql_async::Error::Server(ServerError {
            code,
            message: "m".into(),
            state: "HY000".into(),
        })
    }

    fn io() -> mysql_async::Error {
        let reset = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        mysql_async::Error::Io(IoError::Io(reset))
    }

    #[test]
    fn nothing_sent_is_unavailable_when_transient() {
        let c = |e| classify(e, Sent::BeforeCommit, "db");
        assert!(matches!(c(io()), Error::Unavailable(_)));
        assert!(matches!(c(server(code::DEADLOCK)), Error::Unavailable(_)));
        assert!(matches!(c(server(1053)), Error::Unavailable(_)));
        assert!(matches!(c(server(1064)), Error::Backend(_)));
    }

    #[test]
    fn a_lost_commit_is_unknown() {
        let err = classify(io(), Sent::Commit, "db");
        assert!(
            matches!(&err, Error::Backend(m) if m.contains("outcome unknown")),
            "{err:?}"
        );
        // An answered COMMIT did not commit.
        assert!(matches!(
            classify(server(1053), Sent::Commit, "db"),
            Error::Unavailable(_)
        ));
    }
}
