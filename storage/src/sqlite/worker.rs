//! The threads that own SQLite connections. Async callers hand them closures over a channel
//! and await the answer on a `tokio::sync::oneshot`, so no tokio thread ever blocks on SQLite.
//!
//! A [`Pool`] is one queue served by one or more threads, each owning its own connection. The
//! writer pool has exactly one thread (SQLite allows one writer at a time); the reader pool of a
//! file database has a few (WAL lets readers run beside the writer).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Error, Result};

/// Work for a connection thread.
enum Job {
    /// Runs alone on the connection (it manages its own transaction, if any).
    Plain(Box<dyn FnOnce(&mut Connection) + Send>),
    /// A write that shares one transaction with the other grouped writes queued beside it
    /// (see [`Pool::run_grouped`]).
    Grouped(GroupedWrite),
}

/// Writes inside the group's transaction; its effects are kept only if it returns `Ok`.
type GroupedWork = Box<dyn FnOnce(&Connection) -> Result<()> + Send>;

struct GroupedWrite {
    work: GroupedWork,
    done: oneshot::Sender<Result<()>>,
}

/// Most writes one group transaction carries.
const MAX_GROUP: usize = 256;

/// A queue of jobs served by threads that each own one connection. Dropping the pool closes the
/// queue; the threads finish the jobs already queued, close their connections and exit.
pub(super) struct Pool {
    jobs: Sender<Job>,
    /// Bounds the jobs queued or running: a caller past the bound waits (asynchronously) for
    /// a free slot instead of growing the queue.
    slots: tokio::sync::Semaphore,
}

/// Most jobs a pool holds queued or running at once.
const MAX_QUEUED_JOBS: usize = 4_096;

impl Pool {
    /// Starts one thread per connection, all serving the same queue.
    pub(super) fn spawn(name: &str, connections: Vec<Connection>) -> Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for (i, conn) in connections.into_iter().enumerate() {
            let queue = Arc::clone(&queue);
            thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || serve(conn, &queue))
                .map_err(|e| Error::Backend(format!("spawning sqlite thread: {e}")))?;
        }
        Ok(Self {
            jobs,
            slots: tokio::sync::Semaphore::new(MAX_QUEUED_JOBS),
        })
    }

    /// Runs `f` on one of the pool's connections and returns its answer. Never blocks the caller.
    ///
    /// If the caller's future is dropped after the job was queued, the job still runs: as with
    /// any database, the outcome of an abandoned write is unknown.
    pub(super) async fn run<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let _slot = self.slots.acquire().await.map_err(|_| stopped())?;
        let (reply, answer) = oneshot::channel();
        let job = Job::Plain(Box::new(move |conn| {
            // The caller may have gone away; then nobody wants the answer.
            let _ = reply.send(f(conn));
        }));
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Runs the write `f` inside a savepoint of a transaction that it shares with every other
    /// grouped write waiting in the queue at that moment (group commit: one `COMMIT`, hence one
    /// fsync, for all of them). `f` must not begin or end a transaction itself. Its answer comes
    /// after the group's `COMMIT`: `Ok` only if `f` succeeded and the commit did; an `Err` of
    /// `f` rolls back `f`'s writes alone.
    pub(super) async fn run_grouped<F>(&self, f: F) -> Result<()>
    where
        F: FnOnce(&Connection) -> Result<()> + Send + 'static,
    {
        let _slot = self.slots.acquire().await.map_err(|_| stopped())?;
        let (done, answer) = oneshot::channel();
        let job = Job::Grouped(GroupedWrite {
            work: Box::new(f),
            done,
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Backend("sqlite connection thread stopped".to_string())
}

/// The loop of one connection thread.
fn serve(mut conn: Connection, queue: &Mutex<Receiver<Job>>) {
    let mut held = None;
    loop {
        let job = match held.take() {
            Some(job) => job,
            None => {
                // Hold the lock only while waiting for the next job, so idle threads take
                // turns.
                let next = match queue.lock() {
                    Ok(rx) => rx.recv(),
                    Err(poisoned) => poisoned.into_inner().recv(),
                };
                let Ok(job) = next else {
                    return; // The pool was dropped.
                };
                job
            }
        };
        match job {
            // A panicking job drops its reply sender (the caller sees a backend error) and
            // rolls back its open transaction while unwinding; the connection stays usable.
            Job::Plain(job) => {
                let _ = catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
            }
            Job::Grouped(first) => {
                // Take every grouped write already waiting, in order; a plain job ends the
                // group and runs after it.
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    let next = match queue.lock() {
                        Ok(rx) => rx.try_recv(),
                        Err(poisoned) => poisoned.into_inner().try_recv(),
                    };
                    match next {
                        Ok(Job::Grouped(write)) => group.push(write),
                        Ok(plain) => {
                            held = Some(plain);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&conn, group);
            }
        }
    }
}

/// One transaction for `group`: each write in its own savepoint, one `COMMIT`, then the
/// answers.
fn commit_group(conn: &Connection, group: Vec<GroupedWrite>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let err = Error::from(e);
        for write in group {
            let _ = write.done.send(Err(err.clone()));
        }
        return;
    }
    let mut answers = Vec::with_capacity(group.len());
    for write in group {
        let result = in_savepoint(conn, write.work);
        answers.push((write.done, result));
    }
    let committed = conn.execute_batch("COMMIT").map_err(Error::from);
    if committed.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for (done, result) in answers {
        let result = match (&committed, result) {
            (Ok(()), result) => result,
            // The commit failed: nothing of the group is known to be stored.
            (Err(e), Ok(())) => Err(e.clone()),
            (Err(_), Err(e)) => Err(e),
        };
        let _ = done.send(result);
    }
}

/// Runs `work` in a savepoint, rolled back unless it returns `Ok` (a panic counts as an error).
fn in_savepoint(conn: &Connection, work: GroupedWork) -> Result<()> {
    conn.execute_batch("SAVEPOINT grouped_write")?;
    let result = match catch_unwind(AssertUnwindSafe(|| work(conn))) {
        Ok(result) => result,
        Err(_) => Err(Error::Backend("sqlite write panicked".to_string())),
    };
    if result.is_err() {
        conn.execute_batch("ROLLBACK TO grouped_write")?;
    }
    conn.execute_batch("RELEASE grouped_write")?;
    result
}
