//! Runs one job: decode, time out, catch panics, honour cancellation, and
//! classify what happened as an [`Outcome`].

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument as _;

use super::{Done, Event, QueueRt, RunningEntry, Shared};
use crate::client::Outcome;
use crate::handler::{CancelReason, JobContext, JobErrorKind, RunningJob};
use crate::job::ClaimedJob;

/// How the handler's future ended.
enum Ended {
    Returned(Result<(), crate::JobError>),
    Panicked(String),
    TimedOut(Duration),
    /// Dropped after being asked to stop.
    Dropped(CancelReason),
}

pub(crate) async fn run(sh: Arc<Shared>, q: Arc<QueueRt>, job: ClaimedJob, slot: OwnedSemaphorePermit, sent: Instant) {
    let span =
        tracing::info_span!("skiplock.job", id = job.id, kind = %job.kind, attempt = job.attempt, queue = %job.queue);
    async move {
        let lease = job.lease;
        let running = Arc::new(RunningJob::new(&job, tokio_util::sync::CancellationToken::new()));
        sh.running
            .lock()
            .expect("not poisoned")
            .insert(job.id, RunningEntry { job: running.clone(), lease, deadline: sent + sh.cfg.lease });
        if let Ok(wait) = (job.attempted_at - job.run_at).to_std() {
            q.metrics.latency.record(wait.as_secs_f64());
        }
        sh.emit(Event::Started { id: job.id, kind: job.kind.clone(), attempt: job.attempt });

        let started = Instant::now();
        let outcome = match sh.cfg.handlers.get(&job.kind).or(sh.cfg.fallback.as_ref()) {
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
                metrics::histogram!("skiplock_job_run_seconds", "kind" => job.kind.clone())
                    .record(started.elapsed().as_secs_f64());
                classify(&q, &running, ended)
            }
            None => {
                tracing::warn!(kind = %job.kind, "no handler registered for this kind; the attempt fails and is retried");
                metrics::counter!("skiplock_jobs_unknown_kind_total", "kind" => job.kind.clone()).increment(1);
                Outcome::Failed {
                    error: format!("no handler for kind {:?} in worker {}", job.kind, sh.cfg.worker_id),
                    retry_in: q.backoff.delay(job.attempt),
                }
            }
        };
        sh.running.lock().expect("not poisoned").remove(&job.id);
        // A full outbox means the database is behind: wait, holding the slot.
        sh.outbox.push(Done { lease, outcome, queue: q.clone() }).await;
        drop(slot);
    }
    .instrument(span)
    .await
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
        _ = sh.kill.cancelled() => {}
    }
    reason
}

fn classify(q: &QueueRt, job: &RunningJob, ended: Ended) -> Outcome {
    let attempt = job.attempt;
    let fail = |error: String| Outcome::Failed { error, retry_in: q.backoff.delay(attempt) };
    match ended {
        Ended::Returned(Ok(())) => Outcome::Completed,
        Ended::Returned(Err(e)) => match (e.kind, job.cancel_reason()) {
            (JobErrorKind::Snooze(d), _) => Outcome::Snoozed(d),
            (JobErrorKind::Cancel(r), _) => Outcome::Cancelled(Some(r)),
            (JobErrorKind::Discard(r), _) => Outcome::Discarded(r),
            // A handler that gave up because it was told to stop.
            (JobErrorKind::Retry { error, .. }, Some(CancelReason::Cancelled)) => Outcome::Cancelled(Some(error)),
            (JobErrorKind::Retry { .. }, Some(CancelReason::Shutdown | CancelReason::LeaseLost)) => Outcome::Released,
            (JobErrorKind::Retry { error, after: Some(after) }, None) => Outcome::Failed { error, retry_in: after },
            (JobErrorKind::Retry { error, after: None }, None) => fail(error),
        },
        Ended::Panicked(msg) => fail(format!("panicked: {msg}")),
        Ended::TimedOut(after) => fail(format!("timed out after {}", humanize(after))),
        Ended::Dropped(CancelReason::Cancelled) => {
            Outcome::Cancelled(Some("cancelled; the handler did not stop within the cancel grace".to_owned()))
        }
        Ended::Dropped(CancelReason::Shutdown | CancelReason::LeaseLost) => Outcome::Released,
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
