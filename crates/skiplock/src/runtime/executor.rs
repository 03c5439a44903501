//! Runs one job: decode, time out, catch panics, honour cancellation, and
//! classify what happened as an [`Outcome`].
//!
//! Whatever happens in here, the attempt ends with an outcome in the outbox:
//! panics in the handler are caught and fail the attempt; user code the
//! runtime calls itself (a custom [`Backoff`](crate::Backoff)) runs under
//! `catch_unwind` too; and a [`Guard`] hands in a failure if this task
//! unwinds anyway, so no attempt stays "running" under a lease its worker
//! keeps renewing.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use super::prefetch::Tickets;
use super::queue::{Done, QueueRt};
use super::shared::Shared;
use crate::events::Event;
use crate::handler::{CancelReason, JobContext, JobErrorKind, RunningJob};
use crate::job::Outcome;
use crate::job::{ClaimedJob, Lease};
use crate::metrics as m;

/// How the handler's future ended.
enum Ended {
    Returned(Result<(), crate::JobError>),
    Panicked(String),
    TimedOut(Duration),
    /// Dropped after being asked to stop.
    Dropped(CancelReason),
}

/// An outcome before its retry wait is known: the part that runs no user
/// code.
enum Decided {
    Final(Outcome),
    /// Failed: retry after this wait, or after the queue's backoff.
    Failed {
        error: String,
        after: Option<Duration>,
    },
}

/// Runs `job`, whose attempt the producer registered as `running` when its
/// claim was answered (at `claimed`), once one of its queue's slots is
/// free. `held` is its place in the queue's budget (prefetch.rs), given
/// back when its outcome is handed in.
pub(crate) async fn run(
    sh: Arc<Shared>,
    q: Arc<QueueRt>,
    job: ClaimedJob,
    running: Arc<RunningJob>,
    held: Tickets,
    claimed: Instant,
) {
    let span =
        tracing::info_span!("skiplock.job", id = job.id, kind = %job.kind, attempt = job.attempt, queue = %job.queue);
    #[cfg(feature = "opentelemetry")]
    crate::trace::continue_in(&span, &job.meta);
    async move {
        let lease = job.lease;
        let Some(slot) = slot_for(&sh, &q, &running).await else {
            give_back(&sh, &q, &job, &running);
            return;
        };
        sh.running.started(lease);
        let _counted = q.metrics.count_running();
        let mut guard = Guard { sh: &sh, q: &q, lease, kind: &job.kind, attempt: job.attempt, armed: true };
        // From due to started: the claim's part, and the time it waited here
        // for a slot.
        let waited = claimed.elapsed();
        if let Ok(wait) = (job.attempted_at - job.run_at).to_std() {
            q.metrics.latency.record((wait + waited).as_secs_f64());
        }
        // Dashboard statistics: this attempt's kind and queue time (stats.rs).
        sh.stats.started(&job, waited);
        sh.events.emit(Event::Started { id: job.id, kind: job.kind.clone(), attempt: job.attempt });

        let started = Instant::now();
        // Metric labels name registered kinds only: a kind any enqueuer may
        // invent (run by the catch-all handler, or by none) must not create
        // a series of its own.
        let (registered, label) = match sh.cfg.handlers.get_key_value(&job.kind) {
            Some((kind, reg)) => (Some(reg), kind.clone()),
            None => (sh.cfg.fallback.as_ref(), m::KIND_OTHER.to_owned()),
        };
        let decided = match registered {
            Some(reg) => {
                let timeout = job.timeout.or(reg.timeout).unwrap_or(sh.cfg.timeout);
                let handler = reg.handler.clone();
                let ctx = JobContext { job: running.clone() };
                let args = job.args;
                // The call itself runs inside the future, so a handler that
                // panics before its first await is caught too.
                let fut = AssertUnwindSafe(async move { handler.call(args, ctx).await }).catch_unwind();
                let ended = tokio::select! {
                    biased;
                    r = tokio::time::timeout(timeout, fut) => match r {
                        Ok(Ok(result)) => Ended::Returned(result),
                        Ok(Err(panic)) => Ended::Panicked(panic_message(panic.as_ref())),
                        Err(_) => Ended::TimedOut(timeout),
                    },
                    reason = stop_requested(&sh, &running) => Ended::Dropped(reason),
                };
                let took = started.elapsed();
                q.budget.ran(took);
                metrics::histogram!(m::JOB_RUN_SECONDS, "kind" => label).record(took.as_secs_f64());
                decide(&running, ended)
            }
            None => {
                // The failure's WARN line (the completer's) names the kind.
                metrics::counter!(m::JOBS_UNKNOWN_KIND).increment(1);
                Decided::Failed {
                    error: format!("no handler for kind {:?} in worker {}", job.kind, sh.cfg.worker_id),
                    after: None,
                }
            }
        };
        let outcome = match decided {
            Decided::Final(o) => o,
            Decided::Failed { error, after } => {
                Outcome::Failed { retry_in: after.unwrap_or_else(|| retry_wait(&q, job.attempt)), error }
            }
        };
        guard.armed = false;
        sh.running.handler_ended(lease);
        // A full outbox means the database is behind: wait, holding the slot
        // (the heartbeat keeps the lease meanwhile).
        sh.outbox.push(Done::new(lease, outcome, q.clone(), &job.kind, job.attempt)).await;
        drop(slot);
        drop(held);
    }
    .instrument(span)
    .await
}

/// Waits for a free slot, unless the job must not start: the worker stops
/// claiming (shutdown), or its attempt was asked to stop (its lease is
/// lost, or an operator cancelled it) while it waited, or it waited
/// the queue's `prefetch_wait` (it goes back for any worker with room).
async fn slot_for(sh: &Shared, q: &QueueRt, running: &RunningJob) -> Option<OwnedSemaphorePermit> {
    let stopped = || sh.tokens.fetch.is_cancelled() || running.token.is_cancelled();
    if stopped() {
        return None;
    }
    if let Ok(slot) = q.slots.clone().try_acquire_owned() {
        return Some(slot);
    }
    tokio::select! {
        biased;
        _ = sh.tokens.fetch.cancelled() => None,
        _ = running.token.cancelled() => None,
        slot = q.slots.clone().acquire_owned() => Some(slot.expect("the semaphore is never closed")),
        () = tokio::time::sleep(q.budget.wait_max()) => {
            // Claimed at a pace its slots no longer keep (prefetch.rs).
            q.budget.waited_too_long();
            None
        }
    }
}

/// Hands back a job that never started: to available with its attempt
/// unused (the outcome `released`), or cancelled if that is why it stopped.
/// A lost lease's outcome is found stale and changes nothing.
fn give_back(sh: &Shared, q: &Arc<QueueRt>, job: &ClaimedJob, running: &RunningJob) {
    let outcome = match running.cancel_reason() {
        Some(CancelReason::Cancelled) => Outcome::Cancelled(Some("cancelled before it started".to_owned())),
        _ => Outcome::Released,
    };
    tracing::debug!(id = job.id, ?outcome, "a prefetched job is handed back unstarted");
    sh.running.handler_ended(job.lease);
    sh.outbox.push_now(Done::new(job.lease, outcome, q.clone(), &job.kind, job.attempt));
}

/// The queue's retry wait after `attempt` failed. A custom backoff is user
/// code: if it panics, the default policy's wait is used and the panic is
/// reported.
fn retry_wait(q: &QueueRt, attempt: i32) -> Duration {
    match std::panic::catch_unwind(AssertUnwindSafe(|| q.backoff.delay(attempt))) {
        Ok(wait) => wait,
        Err(panic) => {
            tracing::error!(queue = %q.name, panic = %panic_message(panic.as_ref()),
                "the retry policy panicked; using the default policy's wait");
            crate::Backoff::default().delay(attempt)
        }
    }
}

/// Hands in a failure for an attempt whose executor unwinds before it could
/// hand in its outcome (a bug, or a panic in code the runtime calls): the
/// attempt counts, so a panic that repeats cannot loop forever.
struct Guard<'a> {
    sh: &'a Arc<Shared>,
    q: &'a Arc<QueueRt>,
    lease: Lease,
    kind: &'a str,
    attempt: i32,
    armed: bool,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if !self.armed || !std::thread::panicking() {
            return;
        }
        tracing::error!(
            id = self.lease.id,
            "the worker's runtime panicked while running this job; failing the attempt"
        );
        self.sh.running.handler_ended(self.lease);
        let retry_in = crate::Backoff::default().delay(1);
        let outcome =
            Outcome::Failed { error: "the worker's runtime panicked while running this attempt".into(), retry_in };
        self.sh.outbox.push_now(Done::new(self.lease, outcome, self.q.clone(), self.kind, self.attempt));
    }
}

/// Resolves when the handler must be dropped: after its token is cancelled
/// and the grace for that reason has passed (none after `stop_now`).
async fn stop_requested(sh: &Shared, job: &RunningJob) -> CancelReason {
    job.token.cancelled().await;
    let reason = job.cancel_reason().unwrap_or(CancelReason::Shutdown);
    let grace = match reason {
        // The lease is about to run out: stop well before it does.
        CancelReason::LeaseLost => sh.cfg.cancel_grace.min(sh.cfg.lease / 10),
        _ => sh.cfg.cancel_grace,
    };
    tokio::select! {
        _ = tokio::time::sleep(grace) => {}
        _ = sh.tokens.kill.cancelled() => {}
    }
    reason
}

fn decide(job: &RunningJob, ended: Ended) -> Decided {
    let fail = |error: String| Decided::Failed { error, after: None };
    match ended {
        Ended::Returned(Ok(())) => Decided::Final(Outcome::Completed),
        Ended::Returned(Err(e)) => match (e.kind, job.cancel_reason()) {
            (JobErrorKind::Snooze(d), _) => Decided::Final(Outcome::Snoozed(d)),
            (JobErrorKind::Cancel(r), _) => Decided::Final(Outcome::Cancelled(Some(r))),
            (JobErrorKind::Discard(r), _) => Decided::Final(Outcome::Discarded(r)),
            // A handler that gave up because it was told to stop.
            (JobErrorKind::Retry { error, .. }, Some(CancelReason::Cancelled)) => {
                Decided::Final(Outcome::Cancelled(Some(error)))
            }
            (JobErrorKind::Retry { .. }, Some(CancelReason::Shutdown | CancelReason::LeaseLost)) => {
                Decided::Final(Outcome::Released)
            }
            (JobErrorKind::Retry { error, after }, None) => Decided::Failed { error, after },
        },
        Ended::Panicked(msg) => fail(format!("panicked: {msg}")),
        Ended::TimedOut(after) => fail(format!("timed out after {}", humanize(after))),
        Ended::Dropped(CancelReason::Cancelled) => Decided::Final(Outcome::Cancelled(Some(
            "cancelled; the handler did not stop within the cancel grace".to_owned(),
        ))),
        Ended::Dropped(CancelReason::Shutdown | CancelReason::LeaseLost) => Decided::Final(Outcome::Released),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

fn humanize(d: Duration) -> String {
    if d.as_millis() % 1000 == 0 { format!("{}s", d.as_secs()) } else { format!("{}ms", d.as_millis()) }
}
