//! [`RunningJobs`]: every attempt this worker holds a lease for, from its
//! claim until its outcome is written (or found stale), keyed by
//! [`Lease`], that is `(id, lease_token)`.
//!
//! Keying by lease and not by job id is what keeps two attempts of one job
//! apart. An attempt whose lease was lost may still be running here (a
//! handler that blocks its thread cannot be dropped) while the same job,
//! rescued, is claimed again by this very worker: the old attempt's late
//! end, its late "lost" answer from a heartbeat, or a cancel meant for it
//! must never touch the new attempt's entry.
//!
//! An entry outlives its handler: once the handler has ended, the entry
//! waits (`Pending`) until its outcome is written, and the heartbeat keeps
//! its lease alive meanwhile. A slow but reachable database therefore
//! delays outcomes without letting their leases run out and the jobs run
//! again.
//!
//! Every attempt's cancellation token is a child of the worker's `jobs`
//! token (`runtime::Tokens`): [`RunningJobs::stop_all`] cancels that one
//! token, and with it every handler, including one registered a moment
//! later.
//!
//! Lock order: the map's mutex, then a job's own mutexes (its cancel reason
//! and its progress, in `RunningJob`); never the other way round. Both are
//! `std::sync::Mutex`es: they are held for a few map operations and never
//! across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::handler::{CancelReason, RunningJob};
use crate::job::Lease;
use tokio_util::sync::CancellationToken;

/// Where an attempt is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Claimed ahead of a free slot (prefetch.rs): its handler has not
    /// started.
    Waiting,
    /// Its handler runs.
    Running,
    /// Its handler has ended; its outcome waits to be written.
    Pending,
}

struct Entry {
    job: Arc<RunningJob>,
    /// When the lease runs out by this process's clock, measured from when
    /// the claim or the last successful heartbeat was sent (so never late).
    deadline: Instant,
    phase: Phase,
}

/// The attempts a worker holds; see the module doc.
#[derive(Default)]
pub(crate) struct RunningJobs {
    /// In lease order, so the attempts of one job are one range (the
    /// prefetch makes this map hundreds of entries long).
    map: Mutex<BTreeMap<Lease, Entry>>,
    /// The parent of every attempt's token.
    jobs: CancellationToken,
}

/// What the heartbeat sends: the leases to extend and the progress each
/// handler reported since the last write.
pub(crate) struct BeatSnapshot {
    pub leases: Vec<Lease>,
    pub progress: Vec<Option<String>>,
}

impl RunningJobs {
    /// Attempts whose tokens are children of `jobs`.
    pub fn new(jobs: CancellationToken) -> Self {
        RunningJobs { map: Mutex::default(), jobs }
    }

    /// A token for a new attempt's handler.
    pub fn token(&self) -> CancellationToken {
        self.jobs.child_token()
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<Lease, Entry>> {
        self.map.lock().expect("not poisoned")
    }

    /// Registers a claimed attempt. Any other attempt of the same job still
    /// held here lost its lease (a job is claimed again only once its last
    /// lease is gone): its handler is asked to stop. Returns the jobs asked.
    pub fn register(&self, lease: Lease, job: Arc<RunningJob>, deadline: Instant) -> Vec<Lease> {
        let mut map = self.map();
        let older: Vec<Lease> = map.range(attempts_of(lease.id)).map(|(l, _)| *l).filter(|l| *l != lease).collect();
        let mut asked = Vec::new();
        for l in older {
            if let Some(e) = map.get(&l)
                && e.phase != Phase::Pending
                && !e.job.token.is_cancelled()
            {
                e.job.cancel(CancelReason::LeaseLost);
                asked.push(l);
            }
        }
        map.insert(lease, Entry { job, deadline, phase: Phase::Waiting });
        asked
    }

    /// The handler of `lease` starts (it had waited for a slot).
    pub fn started(&self, lease: Lease) {
        if let Some(e) = self.map().get_mut(&lease)
            && e.phase == Phase::Waiting
        {
            e.phase = Phase::Running;
        }
    }

    /// The handler of `lease` has ended: its entry waits for its outcome.
    pub fn handler_ended(&self, lease: Lease) {
        if let Some(e) = self.map().get_mut(&lease) {
            e.phase = Phase::Pending;
        }
    }

    /// The outcome of `lease` was written, found stale or given up: the
    /// attempt is no longer held.
    pub fn forget(&self, lease: Lease) {
        self.map().remove(&lease);
    }

    /// Asks the handler of `lease` to stop, if it still runs or has not
    /// started. True if it was asked now (not before).
    pub fn cancel(&self, lease: Lease, reason: CancelReason) -> bool {
        let job = match self.map().get(&lease) {
            Some(e) if e.phase != Phase::Pending => e.job.clone(),
            _ => return false,
        };
        if job.token.is_cancelled() {
            return false;
        }
        job.cancel(reason);
        true
    }

    /// The attempts of job `id` running or waiting to (an operator's cancel
    /// names a job, not an attempt).
    pub fn running_of(&self, id: i64) -> Vec<Lease> {
        self.map().range(attempts_of(id)).filter(|(_, e)| e.phase != Phase::Pending).map(|(l, _)| *l).collect()
    }

    /// Attempts running or waiting to, not asked to stop, whose lease runs
    /// out within `margin` of `now`.
    pub fn expiring(&self, now: Instant, margin: std::time::Duration) -> Vec<Lease> {
        self.map()
            .iter()
            .filter(|(_, e)| e.phase != Phase::Pending && now + margin >= e.deadline && !e.job.token.is_cancelled())
            .map(|(l, _)| *l)
            .collect()
    }

    /// Every lease worth extending (all but those whose handler was stopped
    /// for a lost lease), with the progress to write.
    pub fn beat_snapshot(&self) -> BeatSnapshot {
        let map = self.map();
        let (leases, progress) = map
            .iter()
            .filter(|(_, e)| e.job.cancel_reason() != Some(CancelReason::LeaseLost))
            .map(|(l, e)| (*l, e.job.progress.lock().expect("not poisoned").clone()))
            .unzip();
        BeatSnapshot { leases, progress }
    }

    /// The heartbeat sent at `sent` extended `extended` by `lease`: moves
    /// their deadlines, and clears the progress that was written unless the
    /// handler set newer since.
    pub fn extended(&self, snapshot: &BeatSnapshot, extended: &[Lease], sent: Instant, lease: std::time::Duration) {
        let sent_progress: HashMap<Lease, &Option<String>> =
            snapshot.leases.iter().copied().zip(&snapshot.progress).collect();
        let mut map = self.map();
        for l in extended {
            if let Some(e) = map.get_mut(l) {
                e.deadline = sent + lease;
                let mut p = e.job.progress.lock().expect("not poisoned");
                if sent_progress.get(l).is_some_and(|sent| **sent == *p) {
                    *p = None;
                }
            }
        }
    }

    /// Drops the progress waiting to be written for `leases` (the database
    /// refused it).
    pub fn drop_progress(&self, leases: &[Lease]) {
        let map = self.map();
        for l in leases {
            if let Some(e) = map.get(l) {
                *e.job.progress.lock().expect("not poisoned") = None;
            }
        }
    }

    /// Asks every handler to stop, for shutdown (their
    /// [`RunningJob::cancel_reason`] is then `Shutdown`, unless they were
    /// asked before for another reason).
    pub fn stop_all(&self) {
        self.jobs.cancel();
    }

    /// Handlers running now (not the jobs waiting for a slot).
    pub fn running(&self) -> usize {
        self.map().values().filter(|e| e.phase == Phase::Running).count()
    }

    /// Every lease held, running or waiting for its outcome.
    pub fn leases(&self) -> Vec<Lease> {
        self.map().keys().copied().collect()
    }
}

/// Every lease of job `id`.
fn attempts_of(id: i64) -> RangeInclusive<Lease> {
    Lease { id, token: i64::MIN }..=Lease { id, token: i64::MAX }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::ClaimedJob;

    fn job(id: i64) -> Arc<RunningJob> {
        let claimed = ClaimedJob::for_test(id);
        Arc::new(RunningJob::new(&claimed, CancellationToken::new()))
    }

    #[test]
    fn a_new_attempt_stops_the_old_one_and_the_old_ones_end_leaves_it_alone() {
        let r = RunningJobs::default();
        let (old, new) = (Lease { id: 7, token: 1 }, Lease { id: 7, token: 2 });
        let old_job = job(7);
        let now = Instant::now();
        assert!(r.register(old, old_job.clone(), now).is_empty());
        r.started(old);
        assert_eq!(r.running(), 1);
        assert_eq!(r.register(new, job(7), now), vec![old]);
        assert_eq!(r.running(), 1, "the old attempt runs on; the new one waits for a slot");
        assert_eq!(old_job.cancel_reason(), Some(CancelReason::LeaseLost));
        // The old attempt ends late: the new one is untouched.
        r.handler_ended(old);
        r.forget(old);
        assert!(!r.cancel(old, CancelReason::LeaseLost), "a late lost answer finds nothing");
        assert_eq!(r.running_of(7), vec![new]);
        assert_eq!(r.beat_snapshot().leases, vec![new]);
    }

    #[test]
    fn a_new_attempt_finds_only_its_own_jobs_older_attempts_among_many() {
        let r = RunningJobs::default();
        let now = Instant::now();
        for id in 1..=500 {
            r.register(Lease { id, token: 5 }, job(id), now);
        }
        let extreme = Lease { id: 250, token: i64::MIN };
        assert_eq!(r.register(extreme, job(250), now), vec![Lease { id: 250, token: 5 }], "no neighbour's");
        let asked = r.register(Lease { id: 250, token: i64::MAX }, job(250), now);
        assert_eq!(asked, vec![extreme], "the one not asked before");
        assert_eq!(r.running_of(250).len(), 3);
        assert_eq!(r.running_of(251), vec![Lease { id: 251, token: 5 }]);
    }

    #[test]
    fn stop_all_stops_every_handler_for_shutdown_and_keeps_an_earlier_reason() {
        let r = RunningJobs::default();
        let (a, b) = (Lease { id: 1, token: 1 }, Lease { id: 2, token: 1 });
        let (ja, jb) = (
            Arc::new(RunningJob::new(&ClaimedJob::for_test(1), r.token())),
            Arc::new(RunningJob::new(&ClaimedJob::for_test(2), r.token())),
        );
        r.register(a, ja.clone(), Instant::now());
        r.register(b, jb.clone(), Instant::now());
        assert!(r.cancel(a, CancelReason::Cancelled));
        r.stop_all();
        assert!(jb.token.is_cancelled());
        assert_eq!(ja.cancel_reason(), Some(CancelReason::Cancelled));
        assert_eq!(jb.cancel_reason(), Some(CancelReason::Shutdown));
        assert!(r.token().is_cancelled(), "a handler registered after stop_all is stopped too");
    }

    #[test]
    fn a_pending_outcome_is_heartbeated_but_not_stopped() {
        let r = RunningJobs::default();
        let l = Lease { id: 1, token: 9 };
        let past = Instant::now() - std::time::Duration::from_secs(1);
        r.register(l, job(1), past);
        r.handler_ended(l);
        assert!(r.expiring(Instant::now(), std::time::Duration::ZERO).is_empty());
        assert_eq!(r.beat_snapshot().leases, vec![l]);
        assert_eq!(r.running(), 0);
        assert_eq!(r.leases(), vec![l]);
    }
}
