//! One queue as the runtime sees it: its free slots and prefetch budget,
//! its producers' wakers, its retry policy and its metric handles; and
//! [`Done`], an outcome on its way from an executor to the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use tokio::sync::{Notify, Semaphore};

use super::prefetch::Budget;
use crate::events::WakeSource;
use crate::job::{Lease, Outcome};
use crate::metrics as m;
use crate::{Backoff, QueueConfig};

/// Claims in flight per queue at most. With one, a queue of quick jobs
/// alternates between claiming and running; with two, one claim's round
/// trip (and commit) overlaps the other's, and their commits share fsyncs.
pub(crate) const PRODUCERS_PER_QUEUE: usize = 2;

/// One queue a worker serves.
pub(crate) struct QueueRt {
    pub name: String,
    /// Free execution slots, shared by the queue's producers.
    pub slots: Arc<Semaphore>,
    /// Jobs claimed and not yet finished, slots and prefetch together.
    pub budget: Arc<Budget>,
    /// One waker per producer (NOTIFY, reconnect, resume, a sibling's full
    /// batch).
    pub wakers: Vec<Notify>,
    /// Why it was last woken (a [`WakeSource`] as u8), for events.
    pub wake_source: AtomicU8,
    pub backoff: Backoff,
    pub metrics: QueueMetrics,
    /// Jobs claimed so far (the marks service advances busy queues only).
    pub claims: AtomicU64,
}

impl QueueRt {
    pub fn new(name: &str, qc: &QueueConfig, backoff: Backoff) -> Self {
        QueueRt {
            name: name.to_owned(),
            slots: Arc::new(Semaphore::new(qc.concurrency)),
            budget: Arc::new(Budget::new(qc.concurrency, qc.prefetch, qc.prefetch_wait)),
            wakers: (0..PRODUCERS_PER_QUEUE.min(qc.concurrency)).map(|_| Notify::new()).collect(),
            wake_source: AtomicU8::new(WakeSource::Poll as u8),
            backoff,
            metrics: QueueMetrics::new(name),
            claims: AtomicU64::new(0),
        }
    }

    /// Wakes the first producer, or all of them.
    pub fn wake(&self, source: WakeSource, all: bool) {
        self.wake_source.store(source as u8, Ordering::Relaxed);
        let n = if all { self.wakers.len() } else { 1 };
        for w in &self.wakers[..n] {
            w.notify_one();
        }
    }

    /// Most jobs one of its producers claims at once: its share of the
    /// slots and the deepest prefetch.
    pub fn claim_cap(&self, claim_batch_max: usize) -> usize {
        self.budget.capacity().div_ceil(self.wakers.len()).clamp(1, claim_batch_max)
    }
}

/// Metric handles for one queue, looked up once (names in `crate::metrics`).
pub(crate) struct QueueMetrics {
    pub claimed: metrics::Counter,
    pub completed: metrics::Counter,
    pub retried: metrics::Counter,
    pub discarded: metrics::Counter,
    pub cancelled: metrics::Counter,
    pub snoozed: metrics::Counter,
    pub stale: metrics::Counter,
    pub latency: metrics::Histogram,
    pub running: metrics::Gauge,
}

/// One job counted in its queue's running gauge until dropped (however its
/// attempt ends: returned, panicked, dropped at shutdown).
pub(crate) struct CountedRunning(metrics::Gauge);

impl Drop for CountedRunning {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

impl QueueMetrics {
    /// Counts one more job running until the returned value is dropped.
    pub fn count_running(&self) -> CountedRunning {
        self.running.increment(1.0);
        CountedRunning(self.running.clone())
    }

    fn new(queue: &str) -> Self {
        let q = || queue.to_owned();
        QueueMetrics {
            claimed: metrics::counter!(m::JOBS_CLAIMED, "queue" => q()),
            completed: metrics::counter!(m::JOBS_COMPLETED, "queue" => q()),
            retried: metrics::counter!(m::JOBS_RETRIED, "queue" => q()),
            discarded: metrics::counter!(m::JOBS_DISCARDED, "queue" => q()),
            cancelled: metrics::counter!(m::JOBS_CANCELLED, "queue" => q()),
            snoozed: metrics::counter!(m::JOBS_SNOOZED, "queue" => q()),
            stale: metrics::counter!(m::COMPLETIONS_STALE, "queue" => q()),
            latency: metrics::histogram!(m::JOB_START_LATENCY, "queue" => q()),
            running: metrics::gauge!(m::JOBS_RUNNING, "queue" => q()),
        }
    }
}

/// An outcome on its way to the database.
pub(crate) struct Done {
    pub lease: Lease,
    pub outcome: Outcome,
    pub queue: Arc<QueueRt>,
    /// The job's kind and this attempt's number, for the log line of a
    /// failure.
    pub kind: String,
    pub attempt: i32,
    /// Whether it holds a place in the outbox's room (see
    /// [`super::outbox::Outbox::push_now`]).
    pub holds_room: bool,
    /// Whether a statement that carried it lost its answer (so it may have
    /// been written already).
    pub resent: bool,
}

impl Done {
    /// The outcome of attempt `attempt` of a job of `kind`, run under `lease`.
    pub fn new(lease: Lease, outcome: Outcome, queue: Arc<QueueRt>, kind: &str, attempt: i32) -> Self {
        Done { lease, outcome, queue, kind: kind.to_owned(), attempt, holds_room: false, resent: false }
    }
}
