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
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// A queue of jobs served by threads that each own one connection. Dropping the pool closes the
/// queue; the threads finish the jobs already queued, close their connections and exit.
pub(super) struct Pool {
    jobs: Sender<Job>,
}

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
        Ok(Self { jobs })
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
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            // The caller may have gone away; then nobody wants the answer.
            let _ = reply.send(f(conn));
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
    loop {
        // Hold the lock only while waiting for the next job, so idle threads take turns.
        let next = match queue.lock() {
            Ok(rx) => rx.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = next else {
            return; // The pool was dropped.
        };
        // A panicking job drops its reply sender (the caller sees a backend error) and rolls
        // back its open transaction while unwinding; the connection stays usable.
        let _ = catch_unwind(AssertUnwindSafe(|| job(&mut conn)));
    }
}
