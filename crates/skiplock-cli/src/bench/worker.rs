//! The worker the workloads measure: the real [`skiplock::Worker`] runtime
//! with a no-op handler (or one that waits a set time), and a tally of finished jobs read from its events
//! on a thread of its own.
//!
//! The worker's event channel holds 4,096 events and a slow receiver loses
//! the oldest. Counting on a dedicated OS thread keeps up without competing
//! with the runtime's two worker threads; should it fall behind anyway, the
//! tally says so and [`Running::wait_for`] counts rows instead.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use skiplock::{Client, Event, Job, Worker, WorkerHandle};
use tokio::sync::Notify;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::time::Instant;

use super::db::{self, Count, Db};

/// The benchmark's job: a number, and nothing to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct Noop {
    /// Which job of the run.
    pub i: u64,
}

impl Job for Noop {
    const KIND: &'static str = "bench.noop";
    const QUEUE: &'static str = db::QUEUE;
}

/// How often the archive is counted once the event tally has lost events.
const RECOUNT_EVERY: Duration = Duration::from_millis(50);

/// What the worker has done, as its events tell.
#[derive(Default)]
struct Tally {
    /// Jobs that reached a final state.
    finished: AtomicU64,
    /// Claims that returned jobs, and the jobs they returned.
    claims: AtomicU64,
    claimed: AtomicU64,
    /// Events lost because this tally fell behind.
    lost: AtomicU64,
    /// `finished` count a waiter wants to hear about.
    want: AtomicU64,
    /// Whether the LISTEN connection is up.
    listening: AtomicBool,
    /// When the first handler started.
    first_start: OnceLock<Instant>,
    changed: Notify,
}

/// A started worker and its tally.
pub struct Running {
    handle: WorkerHandle,
    tally: Arc<Tally>,
    /// Rows when it started, for counting after lost events: archived ones
    /// if completed jobs are kept, else (for runs that enqueue nothing
    /// meanwhile) hot ones.
    rows_before: i64,
    keep_completed: bool,
}

/// Starts a worker on the benchmark queue with `concurrency` slots and the
/// library's defaults (completed jobs kept in the archive).
pub async fn start(db: &Db, client: Client, concurrency: usize) -> Result<Running> {
    start_with(db, client, concurrency, true).await
}

/// Starts a worker on the benchmark queue with `concurrency` slots that
/// keeps completed jobs in the archive or, if not `keep_completed`, deletes
/// them.
pub async fn start_with(db: &Db, client: Client, concurrency: usize, keep_completed: bool) -> Result<Running> {
    start_opts(db, client, concurrency, keep_completed, Duration::ZERO).await
}

/// Starts a worker whose jobs each take `work` (a timer, no CPU), keeping
/// completed jobs in the archive.
pub async fn start_working(db: &Db, client: Client, concurrency: usize, work: Duration) -> Result<Running> {
    start_opts(db, client, concurrency, true, work).await
}

async fn start_opts(
    db: &Db,
    client: Client,
    concurrency: usize,
    keep_completed: bool,
    work: Duration,
) -> Result<Running> {
    let rows_before = db.count(if keep_completed { Count::Archived } else { Count::Hot }).await?;
    let worker = Worker::builder(client)
        .queue(db::QUEUE, concurrency)
        .keep_completed(keep_completed)
        .register(move |_job: Noop, _ctx| async move {
            if !work.is_zero() {
                tokio::time::sleep(work).await;
            }
            Ok(())
        })
        .build()?;
    let tally = Arc::new(Tally::default());
    let events = worker.subscribe();
    let t = tally.clone();
    std::thread::Builder::new().name("bench-events".into()).spawn(move || count(events, &t))?;
    Ok(Running { handle: worker.start(), tally, rows_before, keep_completed })
}

/// Counts events until the worker stops.
fn count(mut events: broadcast::Receiver<Event>, tally: &Tally) {
    loop {
        match events.blocking_recv() {
            Ok(Event::Finished { state, .. }) if state.is_final() => {
                let n = tally.finished.fetch_add(1, Ordering::AcqRel) + 1;
                if n >= tally.want.load(Ordering::Acquire) {
                    tally.changed.notify_waiters();
                }
            }
            Ok(Event::Claimed { count, .. }) => {
                tally.claims.fetch_add(1, Ordering::Relaxed);
                tally.claimed.fetch_add(count as u64, Ordering::Relaxed);
            }
            Ok(Event::Started { .. }) => {
                if tally.first_start.get().is_none() {
                    let _ = tally.first_start.set(Instant::now());
                }
            }
            Ok(Event::ListenerConnected) => {
                tally.listening.store(true, Ordering::Release);
                tally.changed.notify_waiters();
            }
            Ok(Event::Stopped) | Err(RecvError::Closed) => return,
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => {
                tally.lost.fetch_add(n, Ordering::AcqRel);
                tally.changed.notify_waiters();
            }
        }
    }
}

impl Running {
    /// Jobs finished so far, by the events (a lower bound once events were
    /// lost).
    pub fn finished(&self) -> u64 {
        self.tally.finished.load(Ordering::Acquire)
    }

    /// Jobs finished so far: by the events, or once events were lost, by
    /// the rows.
    pub async fn finished_exact(&self, db: &Db) -> Result<u64> {
        if self.lost() == 0 {
            return Ok(self.finished());
        }
        self.finished_by_rows(db).await
    }

    /// Jobs finished since the start, counted in the tables: rows added to
    /// the archive, or when completed jobs are deleted, rows gone from the
    /// hot table.
    async fn finished_by_rows(&self, db: &Db) -> Result<u64> {
        let n = if self.keep_completed {
            db.count(Count::Archived).await? - self.rows_before
        } else {
            self.rows_before - db.count(Count::Hot).await?
        };
        Ok(n.max(0) as u64)
    }

    /// Claims that returned jobs so far, and the jobs they returned.
    pub fn claims(&self) -> (u64, u64) {
        (self.tally.claims.load(Ordering::Relaxed), self.tally.claimed.load(Ordering::Relaxed))
    }

    /// When its first handler started, if one has.
    pub fn first_start(&self) -> Option<Instant> {
        self.tally.first_start.get().copied()
    }

    /// Events the tally lost.
    pub fn lost(&self) -> u64 {
        self.tally.lost.load(Ordering::Acquire)
    }

    /// Waits until `n` jobs finished since the start (outcomes written),
    /// or `timeout` passes; true if they did. After lost events it counts
    /// rows instead, every [`RECOUNT_EVERY`].
    pub async fn wait_for(&self, db: &Db, n: u64, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        self.tally.want.store(n, Ordering::Release);
        loop {
            let mut changed = pin!(self.tally.changed.notified());
            changed.as_mut().enable();
            if self.finished() >= n {
                return Ok(true);
            }
            let lost = self.lost() > 0;
            if lost && self.finished_by_rows(db).await? >= n {
                return Ok(true);
            }
            let recount = if lost { RECOUNT_EVERY } else { timeout };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(recount) => {}
                () = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }

    /// Waits until the LISTEN connection is up, or `timeout` passes; true
    /// if it is.
    pub async fn wait_listening(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let mut changed = pin!(self.tally.changed.notified());
            changed.as_mut().enable();
            if self.tally.listening.load(Ordering::Acquire) {
                return true;
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// Shuts the worker down gracefully (every outcome written).
    pub async fn stop(self) {
        self.handle.shutdown().await;
    }
}
