//! Concurrent single enqueues of one client share statements: group
//! commit. A web service's request handlers each enqueue one job; sent one
//! statement and one commit each, they queue for the server's commits. Here
//! a call that finds fewer than [`IN_FLIGHT_MAX`] statements in flight
//! sends its job at once (a lone call waits for nothing); calls that arrive
//! while they are all in flight wait, and the next statement carries all of
//! them, up to [`BATCH_MAX`]. Every call still returns only once its job is
//! committed.
//!
//! Only jobs without a unique key are combined: their multi-row insert is
//! one statement, atomic by itself. So when the server refuses that
//! statement (an `ERROR`) nothing of it was written, and each of its jobs
//! is sent again alone: a job's error is its own, never a neighbour's. When
//! the connection fails instead, or the session is ended (`FATAL`), nothing
//! says whether the commit happened: every job of the statement gets the
//! same error, as a lone call would, and none is sent again.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::facade::Client;
use crate::db::columns::Columns;
use crate::error::{Error, Result};
use crate::job::Enqueued;

/// Most combined statements of one client in flight at once.
pub(crate) const IN_FLIGHT_MAX: usize = 2;

/// Most jobs one combined statement carries.
pub(crate) const BATCH_MAX: usize = 500;

/// A job waiting for a statement, and where its result goes.
struct Waiting {
    cols: Columns,
    reply: oneshot::Sender<Result<Enqueued>>,
}

#[derive(Default)]
struct State {
    waiting: Vec<Waiting>,
    in_flight: usize,
}

/// One client's jobs waiting to be sent, and its statements in flight.
#[derive(Default)]
pub(crate) struct Coalescer {
    state: Mutex<State>,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock().expect("not poisoned");
        f.debug_struct("Coalescer").field("waiting", &s.waiting.len()).field("in_flight", &s.in_flight).finish()
    }
}

/// Counts a sender out of [`State::in_flight`] however its task ends (also
/// if the runtime drops it), so the next call starts another.
struct InFlight(Client);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.inner.coalescer.state.lock().expect("not poisoned").in_flight -= 1;
    }
}

impl Client {
    /// Sends `job` (one valid job without a unique key) in the next
    /// statement that has room, and waits for its result.
    pub(super) async fn enqueue_combined(&self, job: Columns) -> Result<Enqueued> {
        let (reply, result) = oneshot::channel();
        let start = {
            let mut s = self.inner.coalescer.state.lock().expect("not poisoned");
            s.waiting.push(Waiting { cols: job, reply });
            let start = s.in_flight < IN_FLIGHT_MAX;
            if start {
                s.in_flight += 1;
            }
            start
        };
        if start {
            // A task of its own, so a caller that gives up waiting does not
            // strand the other jobs of its statement.
            tokio::spawn(send_waiting(InFlight(self.clone())));
        }
        result.await.unwrap_or_else(|_| {
            Err(Error::Pool("the task sending this enqueue stopped (the runtime is shutting down)".into()))
        })
    }
}

/// Sends the waiting jobs, a statement at a time, until none are left.
async fn send_waiting(guard: InFlight) {
    let client = &guard.0;
    loop {
        // One turn of the scheduler first: the calls that the last
        // statement's replies woke can come back with their next job.
        tokio::task::yield_now().await;
        let batch: Vec<Waiting> = {
            let mut s = client.inner.coalescer.state.lock().expect("not poisoned");
            let n = s.waiting.len().min(BATCH_MAX);
            s.waiting.drain(..n).collect()
        };
        if batch.is_empty() {
            return;
        }
        let mut cols = Columns::default();
        let mut replies = Vec::with_capacity(batch.len());
        for w in batch {
            cols.append(w.cols);
            replies.push(w.reply);
        }
        match client.insert_combined(&cols).await {
            Ok(done) => {
                for (reply, e) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(e));
                }
            }
            Err(e) if replies.len() == 1 => {
                let _ = replies.pop().expect("one").send(Err(e));
            }
            Err(e) if refused(&e) => {
                // Nothing was written: each job again, alone.
                for (i, reply) in replies.into_iter().enumerate() {
                    let one = cols.subset(&[i]);
                    let r = client.insert_combined(&one).await.map(|mut v| v.pop().expect("one result per job"));
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                let shared = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(Error::Shared(shared.clone())));
                }
            }
        }
    }
}

/// Whether the server refused the statement: it answered with an error of
/// severity `ERROR`, so the statement's transaction rolled back. Not a
/// `FATAL` one (a terminated session, a server shutting down): that can come
/// after the commit, and says nothing about it; nor a failed connection.
fn refused(e: &Error) -> bool {
    let pg = match e {
        Error::Database(pg) | Error::Transient(pg) | Error::NotMigrated { source: pg, .. } => pg,
        _ => return false,
    };
    pg.as_db_error().is_some_and(|db| db.parsed_severity() == Some(tokio_postgres::error::Severity::Error))
}

impl Client {
    /// One statement for the jobs of `cols` (none with a unique key), on a
    /// pooled connection.
    async fn insert_combined(&self, cols: &Columns) -> Result<Vec<Enqueued>> {
        let db = self.db();
        let conn = db.conn().await?;
        // No `pg`: never a COPY, whose statements would need a transaction.
        crate::db::insert::insert(db, conn.on(), None, cols, &|c| self.wake(c)).await
    }
}
