//! Settling a shard commit whose `COMMIT` was sent and whose answer was lost.
//!
//! Every shard commit marks the shard's row in the conditional `UPDATE` that fences it:
//! `commit_seq` goes up by one and `commit_token` takes a value of this commit alone. Commits of
//! a shard hold that row's lock in turn, so each adds exactly one to `commit_seq`. When the
//! answer to a `COMMIT` is lost, the store ends the session that sent it (`KILL`, then waits
//! until the server no longer lists it: only then is its outcome final) and reads the row:
//! - the token is this commit's: it committed;
//! - `commit_seq` is at most this commit's and the token another's: it did not commit (nothing
//!   of it was written);
//! - anything else (later commits moved the row on, the server stays unreachable): the outcome
//!   stays unknown ([`Error::Backend`]).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime};

use mysql_async::prelude::Queryable;

use super::error::{Sent, classify, server_code};
use super::{MysqlStore, first_row};
use crate::{Error, Result};

/// How long the store tries to learn a lost commit's outcome before calling it unknown.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);

/// `ER_NO_SUCH_THREAD`: the session to end is gone already.
const NO_SUCH_THREAD: u16 = 1094;

/// What a shard commit wrote on the shard's row, and the session that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CommitMark {
    /// The shard's `commit_seq` after this commit.
    pub seq: i64,
    /// This commit's `commit_token`.
    pub token: i64,
    /// The server's id of the session that ran the commit.
    pub session: u32,
}

/// A token no other commit uses (64 random bits: the standard library's hash keys are seeded
/// randomly, and the clock is mixed in).
pub(super) fn new_token() -> i64 {
    let mut hasher = RandomState::new().build_hasher();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.finish() as i64
}

impl MysqlStore {
    /// The answer to a shard commit whose `COMMIT` answer was lost (`unknown` is the error
    /// that says so): `Ok` if it committed, [`Error::Unavailable`] if it did not, `unknown`
    /// when that cannot be learnt within [`SETTLE_WITHIN`].
    pub(super) async fn settle(
        &self,
        shard_id: i32,
        mark: &CommitMark,
        unknown: Error,
    ) -> Result<()> {
        let deadline = Instant::now() + SETTLE_WITHIN;
        let mut pause = Duration::from_millis(50);
        loop {
            match self.committed(shard_id, mark, deadline).await {
                Ok(Some(true)) => return Ok(()),
                Ok(Some(false)) => {
                    return Err(Error::Unavailable(format!(
                        "mysql {}: the answer to COMMIT was lost and the commit did not land",
                        self.target
                    )));
                }
                Ok(None) => return Err(unknown),
                // Unreachable (restarting, failing over): try again for a while.
                Err(_) if Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(_) => return Err(unknown),
            }
        }
    }

    /// Whether the commit marked `mark` committed; `None` when the shard's row cannot tell.
    async fn committed(
        &self,
        shard_id: i32,
        mark: &CommitMark,
        deadline: Instant,
    ) -> Result<Option<bool>> {
        let sql_error = |e| classify(e, Sent::BeforeCommit, &self.target);
        let mut conn = self.conn().await?;
        match conn
            .query_drop(format!("KILL CONNECTION {}", mark.session))
            .await
        {
            Err(e) if server_code(&e) != Some(NO_SUCH_THREAD) => return Err(sql_error(e)),
            _ => {}
        }
        // KILL returns before the session has ended (rolling back what it did not commit).
        loop {
            let alive: Option<i64> = conn
                .exec_first(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                    (mark.session,),
                )
                .await
                .map_err(sql_error)?;
            if alive == Some(0) {
                break;
            }
            if Instant::now() > deadline {
                return Ok(None);
            }
            // Nothing to await: the server tells no one when a session ends.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let row: Option<(i64, i64)> = first_row(
            &mut conn,
            "SELECT commit_seq, commit_token FROM shards WHERE shard_id = ?",
            (shard_id,),
        )
        .await
        .map_err(|e| e.into_error(Sent::BeforeCommit, &self.target))?;
        Ok(match row {
            Some((_, token)) if token == mark.token => Some(true),
            Some((seq, _)) if seq <= mark.seq => Some(false),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ() {
        let tokens: std::collections::HashSet<i64> = (0..1000).map(|_| new_token()).collect();
        assert_eq!(tokens.len(), 1000);
    }
}
