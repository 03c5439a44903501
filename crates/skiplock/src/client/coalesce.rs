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

/// Counts a sender out of [`State::in_flight`] if its task ends early (the
/// runtime drops it), so the next call starts another. A sender that runs
/// out of jobs counts itself out under the same lock as it finds none
/// waiting, or a call queued in between would wait for a sender that is
/// leaving.
struct InFlight<'a> {
    co: &'a Coalescer,
    counted: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.counted {
            self.co.state.lock().expect("not poisoned").in_flight -= 1;
        }
    }
}

impl Coalescer {
    /// Queues `job` (one valid job without a unique key) for the next
    /// statement with room. The result comes on the receiver; `true` says
    /// the caller must start a sender, [`Coalescer::send_waiting`], in a
    /// task of its own (so a caller that gives up waiting does not strand
    /// the other jobs of its statement).
    pub fn submit(&self, job: Columns) -> (oneshot::Receiver<Result<Enqueued>>, bool) {
        let (reply, result) = oneshot::channel();
        let mut s = self.state.lock().expect("not poisoned");
        s.waiting.push(Waiting { cols: job, reply });
        let start = s.in_flight < IN_FLIGHT_MAX;
        if start {
            s.in_flight += 1;
        }
        (result, start)
    }

    /// Sends the waiting jobs with `insert` (one statement for the jobs
    /// it is given, which it hands back with the result), a statement at a
    /// time, until none are left.
    pub async fn send_waiting<F, Fut>(&self, insert: F)
    where
        F: Fn(Columns) -> Fut,
        Fut: Future<Output = (Columns, Result<Vec<Enqueued>>)>,
    {
        let mut me = InFlight { co: self, counted: true };
        loop {
            // One turn of the scheduler first: the calls that the last
            // statement's replies woke can come back with their next job.
            tokio::task::yield_now().await;
            let batch: Vec<Waiting> = {
                let mut s = self.state.lock().expect("not poisoned");
                if s.waiting.is_empty() {
                    s.in_flight -= 1;
                    me.counted = false;
                    return;
                }
                let n = s.waiting.len().min(BATCH_MAX);
                s.waiting.drain(..n).collect()
            };
            let mut cols = Columns::default();
            let mut replies = Vec::with_capacity(batch.len());
            for w in batch {
                cols.append(w.cols);
                replies.push(w.reply);
            }
            let (cols, result) = insert(cols).await;
            match result {
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
                        let (_, r) = insert(cols.subset(&[i])).await;
                        let r = r.map(|mut v| v.pop().expect("one result per job"));
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

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;

    /// One job's columns.
    fn one() -> Columns {
        let mut c = Columns::default();
        c.queue.push("q".into());
        c.kind.push("k".into());
        c.args.push(RawValue::from_string("{}".into()).unwrap());
        c.priority.push(0);
        c.run_at.push(None);
        c.delay_ms.push(None);
        c.max_attempts.push(1);
        c.unique_key.push(None);
        c.tags.push(Vec::new());
        c.meta.push("{}".into());
        c.timeout_ms.push(None);
        c.unique_args.push(false);
        c.unique_period_s.push(None);
        c.unique_final.push(None);
        c
    }

    /// An insert that gives the jobs ids 0, 1, … and counts its statements.
    fn insert(
        statements: &std::cell::Cell<usize>,
    ) -> impl Fn(Columns) -> std::future::Ready<(Columns, Result<Vec<Enqueued>>)> + '_ {
        move |cols: Columns| {
            statements.set(statements.get() + 1);
            let done = (0..cols.len()).map(|i| Enqueued { id: i as i64, inserted: true }).collect();
            std::future::ready((cols, Ok(done)))
        }
    }

    fn in_flight(co: &Coalescer) -> usize {
        co.state.lock().unwrap().in_flight
    }

    #[tokio::test]
    async fn senders_take_every_waiting_job_and_count_themselves_out() {
        let co = Coalescer::default();
        let statements = std::cell::Cell::new(0);
        let (r1, start1) = co.submit(one());
        let (r2, start2) = co.submit(one());
        let (r3, start3) = co.submit(one());
        assert_eq!((start1, start2, start3), (true, true, false), "two senders at most");
        // The first sender takes all three in one statement, then finds
        // nothing and counts itself out; the second, never run, still counts.
        co.send_waiting(insert(&statements)).await;
        assert_eq!(statements.get(), 1);
        let ids: Vec<i64> = [r1, r2, r3].into_iter().map(|mut r| r.try_recv().unwrap().unwrap().id).collect();
        assert_eq!(ids, [0, 1, 2], "each call its own row of the statement");
        assert_eq!(in_flight(&co), 1);
        co.send_waiting(insert(&statements)).await;
        assert_eq!((statements.get(), in_flight(&co)), (1, 0), "nothing to send: it counts itself out");
        // With none in flight, the next call starts a sender again.
        let (_r4, start4) = co.submit(one());
        assert!(start4);
    }

    #[tokio::test]
    async fn a_sender_dropped_midway_is_counted_out() {
        let co = Coalescer::default();
        let (_r, start) = co.submit(one());
        assert!(start);
        let never = |cols: Columns| async move {
            std::future::pending::<()>().await;
            (cols, Ok(Vec::new()))
        };
        let mut sending = Box::pin(co.send_waiting(never));
        assert!(futures_util::poll!(sending.as_mut()).is_pending(), "its statement never answers");
        assert!(futures_util::poll!(sending.as_mut()).is_pending());
        assert_eq!(in_flight(&co), 1);
        drop(sending);
        assert_eq!(in_flight(&co), 0, "dropped (as by a runtime shutting down): counted out");
    }
}
