//! How many jobs a queue holds claimed beyond its free slots: the
//! prefetch. Claimed jobs wait here, in their executors, for a slot; their
//! leases are registered and heartbeated from the claim on, so a job that
//! waits is as safe as one that runs, and one whose lease is lost, or that
//! is cancelled, never starts. At shutdown they are given back unstarted.
//!
//! Without it, a slot that frees up waits a claim's round trip for its next
//! job: at small concurrency and quick jobs the worker spends most of its
//! time waiting for claims. With it, the next job is already here.
//!
//! How much to hold is set by how long the queue's jobs run: enough to
//! keep its slots busy for about [`HORIZON`], from the mean run time of its
//! recent jobs, never more than the queue's `prefetch` setting, and none
//! before a first job has finished. Quick jobs get deep prefetch (and
//! claims of hundreds); slow jobs almost none, so a job never waits long
//! here while another worker has free slots, and two workers on one queue
//! share it by their speed.
//!
//! The mean follows the jobs that finished, so it lags when a queue's
//! quick jobs are followed by slow ones: the prefetch taken at the quick
//! jobs' pace would then keep jobs waiting here behind slow ones. So a job
//! that has waited the queue's `prefetch_wait` (default 1 s) for a slot is
//! handed back unstarted (its attempt unused) for any worker with room, and
//! the queue prefetches nothing more until one of its jobs finishes and
//! brings the mean up to date.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// How long a queue's held jobs would keep its slots busy, at its recent
/// run times, at most.
pub(crate) const HORIZON: Duration = Duration::from_millis(50);
/// The weight of one finished job in the mean run time: the last dozen or
/// so count.
const WEIGHT: f64 = 1.0 / 8.0;

/// A queue's claimed jobs not finished yet, and its jobs' mean run time.
pub(crate) struct Budget {
    concurrency: usize,
    /// The most jobs held beyond the slots (the queue's setting).
    prefetch_max: usize,
    /// Claimed and not yet finished (waiting, running, or handing in).
    held: AtomicUsize,
    /// Notified whenever held jobs finish.
    freed: Notify,
    /// The mean run time in nanoseconds, smoothed (`f64` bits); NaN until
    /// a first job has finished.
    mean_ns: AtomicU64,
    /// The longest a held job waits for a slot (the queue's
    /// `prefetch_wait`).
    wait_max: Duration,
    /// Set when a job waited `wait_max` for a slot: no prefetch until the
    /// next job finishes.
    held_back: AtomicBool,
}

impl Budget {
    pub fn new(concurrency: usize, prefetch_max: usize, wait_max: Duration) -> Self {
        Budget {
            concurrency,
            prefetch_max,
            wait_max,
            held: AtomicUsize::new(0),
            freed: Notify::new(),
            mean_ns: AtomicU64::new(f64::NAN.to_bits()),
            held_back: AtomicBool::new(false),
        }
    }

    /// The most jobs held at once: the slots and the deepest prefetch.
    pub fn capacity(&self) -> usize {
        self.concurrency + self.prefetch_max
    }

    /// Counts one handler's run time in the mean.
    pub fn ran(&self, took: Duration) {
        let took = took.as_nanos() as f64;
        // Executors of one queue end on several threads: a lost update
        // only drops one sample from a smoothed mean.
        let mean = f64::from_bits(self.mean_ns.load(Ordering::Relaxed));
        let next = if mean.is_nan() { took } else { mean + WEIGHT * (took - mean) };
        self.mean_ns.store(next.to_bits(), Ordering::Relaxed);
        self.held_back.store(false, Ordering::Relaxed);
    }

    /// The longest a held job waits for a slot.
    pub fn wait_max(&self) -> Duration {
        self.wait_max
    }

    /// Records that a held job waited [`Budget::wait_max`] for a slot: the
    /// mean is out of date, so nothing more is prefetched until a job
    /// finishes.
    pub fn waited_too_long(&self) {
        self.held_back.store(true, Ordering::Relaxed);
    }

    /// Jobs held now.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// How many jobs may be held now: the slots, plus what keeps them busy
    /// for [`HORIZON`] at the mean run time, up to the setting.
    pub fn limit(&self) -> usize {
        let mean = f64::from_bits(self.mean_ns.load(Ordering::Relaxed));
        if self.prefetch_max == 0 || mean.is_nan() || self.held_back.load(Ordering::Relaxed) {
            return self.concurrency;
        }
        let per_slot = HORIZON.as_nanos() as f64 / mean.max(1.0);
        let ahead = (per_slot * self.concurrency as f64).min(self.prefetch_max as f64) as usize;
        self.concurrency + ahead
    }

    /// Takes up to `most` tickets if fewer than `limit` jobs are held;
    /// `None` if there is no room.
    pub fn try_take(self: &Arc<Self>, limit: usize, most: usize) -> Option<Tickets> {
        let mut held = self.held.load(Ordering::Acquire);
        loop {
            let n = limit.saturating_sub(held).min(most);
            if n == 0 {
                return None;
            }
            match self.held.compare_exchange_weak(held, held + n, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Some(Tickets { budget: self.clone(), n }),
                Err(now) => held = now,
            }
        }
    }

    /// Resolves once some held job has finished since `enable`d (see
    /// [`Notify::notified`]).
    pub fn freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::AcqRel);
        self.freed.notify_waiters();
    }
}

/// Held jobs: one per claimed job from the claim until its outcome is
/// handed in, and the unused rest of a claim until it is answered.
pub(crate) struct Tickets {
    budget: Arc<Budget>,
    n: usize,
}

impl Tickets {
    pub fn count(&self) -> usize {
        self.n
    }

    /// Takes one ticket out of these (one per claimed job).
    pub fn split_one(&mut self) -> Option<Tickets> {
        (self.n > 0).then(|| {
            self.n -= 1;
            Tickets { budget: self.budget.clone(), n: 1 }
        })
    }

    /// Takes `more` too.
    pub fn merge(&mut self, mut more: Tickets) {
        self.n += more.n;
        more.n = 0;
    }
}

impl Drop for Tickets {
    fn drop(&mut self) {
        if self.n > 0 {
            self.budget.give_back(self.n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_secs(1);

    #[test]
    fn tickets_never_exceed_the_limit_and_come_back_when_dropped() {
        let b = Arc::new(Budget::new(4, 0, WAIT));
        assert_eq!(b.limit(), 4);
        let mut t = b.try_take(b.limit(), 10).expect("room");
        assert_eq!(t.count(), 4);
        assert!(b.try_take(4, 10).is_none(), "full");
        let one = t.split_one().expect("a ticket");
        drop(t);
        assert_eq!(b.held(), 1);
        let more = b.try_take(4, 2).expect("room again");
        assert_eq!(more.count(), 2);
        drop((one, more));
        assert_eq!(b.held(), 0);
    }

    #[test]
    fn the_prefetch_follows_the_run_time_up_to_its_setting() {
        let b = Budget::new(10, 300, WAIT);
        assert_eq!(b.limit(), 10, "nothing has run yet: the slots only");
        // 10 ms jobs: 50 ms is five per slot.
        b.ran(Duration::from_millis(10));
        assert_eq!(b.limit(), 10 + 50);
        // Quick jobs: capped by the setting.
        for _ in 0..100 {
            b.ran(Duration::from_micros(5));
        }
        assert_eq!(b.limit(), 10 + 300);
        // Slow jobs: none ahead.
        for _ in 0..100 {
            b.ran(Duration::from_secs(2));
        }
        assert_eq!(b.limit(), 10);
        let off = Budget::new(3, 0, WAIT);
        off.ran(Duration::from_micros(1));
        assert_eq!(off.limit(), 3, "no prefetch when it is off");
    }

    #[test]
    fn a_job_that_waited_too_long_stops_the_prefetch_until_a_job_finishes() {
        let b = Budget::new(10, 300, WAIT);
        b.ran(Duration::from_millis(10));
        assert_eq!(b.limit(), 10 + 50);
        b.waited_too_long();
        assert_eq!(b.limit(), 10, "the slots only: the run time is out of date");
        b.ran(Duration::from_millis(10));
        assert!(b.limit() > 10, "a finished job brings the prefetch back");
    }
}
