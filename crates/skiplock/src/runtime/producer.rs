//! Producers: claim batches sized to the room in the queue's budget (its
//! free slots and its prefetch, prefetch.rs), hand each job to an executor,
//! and carry waiting outcomes along in the same statement.
//!
//! A claim whose answer is lost (the connection dropped or timed out while
//! the statement was under way) may have been committed: the jobs it took
//! are then `running` under this worker's name with nobody running them.
//! Before it claims again, the worker gives back every job leased to it
//! that it does not know it holds ([`reconcile`]), as if it had never been
//! claimed: no attempt is used up for a job that never started.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::prefetch::Tickets;
use super::queue::{Done, QueueRt};
use super::shared::Shared;
use super::{completer, executor};
use crate::db::job::JobClaimParams;
use crate::events::{Event, WakeSource};
use crate::handler::{CancelReason, RunningJob};
use crate::job::Outcome;
use crate::service::sleep_or;

/// Longest wait for more room before claiming on a busy queue.
const GATHER: Duration = Duration::from_millis(1);
/// First pause after a failed claim.
const RETRY_MIN: Duration = Duration::from_millis(50);
/// Longest pause after a failed claim.
const CLAIM_RETRY_MAX: Duration = Duration::from_secs(5);
/// Longest pause between attempts to give back a lost claim's jobs.
const RECONCILE_RETRY: Duration = Duration::from_millis(100);

/// Producer `me` of queue `q`. Producers of one queue share its slots; each
/// claims at most its share, so two claims can be in flight at once.
pub(crate) async fn run(sh: Arc<Shared>, q: Arc<QueueRt>, me: usize) {
    let cfg = &sh.cfg;
    let cap = q.claim_cap(cfg.claim_batch_max);
    let waker = &q.wakers[me];
    let sibling = &q.wakers[(me + 1) % q.wakers.len()];
    let mut idle = cfg.poll_interval;
    let mut retry = RETRY_MIN;
    let mut busy = Busy::new(&sh);
    let mut last_full = false;
    loop {
        // Not before this process holds its worker id (registry.rs).
        if !sh.registry.is_registered() && !sh.registry.wait(&sh.tokens.fetch).await {
            return;
        }
        // Wait for room in the queue's budget (its free slots and the
        // prefetch its jobs' run time calls for, prefetch.rs), then take all
        // of it up to a claim's share.
        let Some(mut held) = room(&sh, &q, cap, None).await else { return };
        // Busy queue, little room: the jobs just started are likely about
        // to finish. Wait a moment for half a batch rather than send a
        // nearly empty claim (each costs a commit).
        let half = cap / 2;
        if last_full && held.count() < half {
            let deadline = tokio::time::Instant::now() + GATHER;
            while held.count() < half {
                match room(&sh, &q, half - held.count(), Some(deadline)).await {
                    Some(more) => held.merge(more),
                    None => break,
                }
            }
        }
        if sh.reconcile_needed.load(Ordering::Acquire)
            && let Err(e) = reconcile(&sh).await
        {
            drop(held);
            tracing::warn!(queue = %q.name, error = %e, "cannot yet give back jobs a lost claim may have taken; retrying");
            // Soon, whatever the claims' backoff: those jobs' leases run.
            if !sleep_or(&sh.tokens.fetch, retry.min(RECONCILE_RETRY)).await {
                return;
            }
            retry = (retry * 2).min(CLAIM_RETRY_MAX);
            continue;
        }
        let want = held.count();
        busy.set(true);
        // Outcomes waiting in the outbox ride along: one statement, one
        // commit, for the outcomes and the next claim.
        let mut done = sh.outbox.take(cfg.complete_batch_max);
        let sent = Instant::now();
        // Held until the claimed jobs are registered: a reconciliation
        // waits for every claim in flight.
        let gate = sh.claims.read().await;
        let claim =
            JobClaimParams { queue: &q.name, limit: want as i64, lease_ms: cfg.lease_ms, worker: &cfg.worker_id };
        let result = completer::write(&sh, &done, &claim).await;
        match result {
            Ok((written, jobs)) => {
                completer::record(&sh, done, &written);
                if retry > RETRY_MIN {
                    // The database answers again: outcomes waiting out a
                    // backoff go now.
                    sh.db_back.notify_waiters();
                }
                retry = RETRY_MIN;
                let got = jobs.len();
                if got > 0 {
                    q.metrics.claimed.increment(got as u64);
                    q.claims.fetch_add(got as u64, Ordering::Relaxed);
                    sh.events.emit(Event::Claimed { queue: q.name.clone(), count: got });
                    // An answer so late that the lease might run out before
                    // the first heartbeat: give the jobs back unstarted.
                    let answered = Instant::now();
                    let late = answered + cfg.lease / 4 >= sent + cfg.lease;
                    for job in jobs {
                        let ticket = held.split_one().expect("one ticket per claimed job");
                        let running = Arc::new(RunningJob::new(&job, sh.running.token()));
                        for older in sh.running.register(job.lease, running.clone(), sent + cfg.lease) {
                            tracing::warn!(
                                id = older.id,
                                "an older attempt of this job still runs here; asked it to stop"
                            );
                            sh.events.emit(Event::CancelRequested { id: older.id, reason: CancelReason::LeaseLost });
                        }
                        if late {
                            tracing::warn!(
                                id = job.id,
                                "claim answered too late to start the job safely; giving it back"
                            );
                            sh.running.handler_ended(job.lease);
                            sh.outbox.push_now(Done::new(
                                job.lease,
                                Outcome::Released,
                                q.clone(),
                                &job.kind,
                                job.attempt,
                            ));
                            drop(ticket);
                            continue;
                        }
                        let task = executor::run(sh.clone(), q.clone(), job, running, ticket, answered);
                        sh.tracker.spawn(task);
                    }
                }
                drop(gate);
                drop(held);
                last_full = got == want;
                if got == want {
                    // A full batch: there is likely more. Claim again as soon
                    // as slots free up, and get the sibling producer going.
                    idle = cfg.poll_interval;
                    if !std::ptr::eq(waker, sibling) {
                        sibling.notify_one();
                    }
                    continue;
                }
                if got > 0 {
                    idle = cfg.poll_interval;
                }
            }
            Err(e) => {
                if completer::ambiguous(&e) {
                    // The claim may have been committed: find out before the
                    // next one (the gate is released first, or this waits
                    // for itself).
                    sh.reconcile_needed.store(true, Ordering::Release);
                    done.mark_resent();
                }
                drop(gate);
                drop(held);
                busy.set(false);
                if !e.is_transient() && !done.is_empty() {
                    // The database refused the statement, perhaps for an
                    // outcome's sake: the completer writes (or sorts out)
                    // the outcomes, and the claim goes on without them, so
                    // one bad outcome cannot stop the queue.
                    if completer::archive_attach_race(&e) {
                        tracing::debug!(queue = %q.name, error = %e, "the archive's table for today was made under these outcomes; the completer writes them again");
                    } else {
                        tracing::warn!(queue = %q.name, error = %e, "outcomes refused with a claim; claiming without them");
                    }
                    let sh2 = sh.clone();
                    sh.flushes.spawn(completer::flush(sh2, done));
                    continue;
                }
                drop(done);
                tracing::warn!(queue = %q.name, error = %e, "claim failed; retrying");
                if !sleep_or(&sh.tokens.fetch, retry).await {
                    return;
                }
                retry = (retry * 2).min(CLAIM_RETRY_MAX);
                continue;
            }
        }
        // The queue looked empty: wait for a NOTIFY or the poll interval.
        // Without a LISTEN connection, poll at the shortest interval.
        busy.set(false);
        let wait = if sh.listening.load(Ordering::Relaxed) { idle } else { cfg.poll_interval };
        let source = tokio::select! {
            _ = waker.notified() => {
                idle = cfg.poll_interval;
                match q.wake_source.swap(WakeSource::Notify as u8, Ordering::Relaxed) {
                    s if s == WakeSource::Reconnect as u8 => WakeSource::Reconnect,
                    _ => WakeSource::Notify,
                }
            }
            _ = tokio::time::sleep(wait) => {
                idle = (idle * 2).min(cfg.poll_interval_max);
                WakeSource::Poll
            }
            _ = sh.tokens.fetch.cancelled() => return,
        };
        sh.events.emit(Event::Woken { queue: q.name.clone(), source });
    }
}

/// Waits for room in `q`'s budget and takes up to `most` tickets; `None` at
/// shutdown, or once `deadline` has passed.
async fn room(sh: &Shared, q: &QueueRt, most: usize, deadline: Option<tokio::time::Instant>) -> Option<Tickets> {
    loop {
        if sh.tokens.fetch.is_cancelled() {
            return None;
        }
        let freed = q.budget.freed();
        let mut freed = std::pin::pin!(freed);
        // Registered before the check, so a job that finishes between the
        // check and the wait still wakes it.
        freed.as_mut().enable();
        if let Some(t) = q.budget.try_take(q.budget.limit(), most) {
            return Some(t);
        }
        let until = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            // Room comes back only as held jobs finish (the limit, too,
            // changes only as finished jobs' run times come in).
            _ = freed => {}
            _ = until => return None,
            _ = sh.tokens.fetch.cancelled() => return None,
        }
    }
}

/// Gives back the jobs leased to this worker that it does not hold (see the
/// module doc). Waits for every claim in flight first, so that the leases
/// it knows are all the leases it holds.
pub(crate) async fn reconcile(sh: &Shared) -> crate::Result<()> {
    let _all = sh.claims.write().await;
    if !sh.reconcile_needed.load(Ordering::Acquire) {
        return Ok(()); // a sibling did it meanwhile
    }
    let known = sh.running.leases();
    let conn = sh.db.conn().await?;
    let released = crate::db::job::release_unknown(conn.on(), &sh.cfg.worker_id, &known).await?;
    sh.reconcile_needed.store(false, Ordering::Release);
    if !released.is_empty() {
        tracing::warn!(ids = ?released,
            "gave back jobs a claim took while its answer was lost (they never started; no attempt used)");
        sh.events.emit(Event::Reconciled { released });
    }
    Ok(())
}

/// Whether this producer counts as claiming back to back (the completer
/// then leaves outcomes for it to carry); cleared when it stops.
struct Busy<'a> {
    sh: &'a Shared,
    on: bool,
}

impl<'a> Busy<'a> {
    fn new(sh: &'a Shared) -> Self {
        Busy { sh, on: false }
    }

    fn set(&mut self, on: bool) {
        if on != self.on {
            self.sh.outbox.set_busy(on);
            self.on = on;
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}
