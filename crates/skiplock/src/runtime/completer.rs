//! Writes the outcomes no producer carried: when the queues are idle (the
//! producers wait instead of claiming), at shutdown, or when outcomes pile up
//! faster than claims take them. One `finish_claim` statement per batch,
//! claiming nothing, fenced by each job's lease token.
//!
//! A batch the database refuses for its content (not for want of a
//! connection) is split, and the outcome at fault written with its error
//! text made plain; one that is refused even then is given up (its lease
//! runs out, and the rescuer runs the job again), so one bad outcome never
//! holds up the others or the worker's claims.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::outbox::Batch;
use super::queue::Done;
use super::shared::Shared;
use crate::db::job::{self as q, FinishColumns, JobClaimParams, Written};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::job::{ClaimedJob, JobState, Lease, Outcome};

/// Batches written at once, each on its own connection.
const IN_FLIGHT: usize = 2;
/// How long outcomes wait for a busy producer to carry them before the
/// completer writes them itself. About one claim's round trip.
const LINGER: Duration = Duration::from_millis(2);
/// Longest pause between attempts to write a batch.
const RETRY_MAX: Duration = Duration::from_secs(2);

pub(crate) async fn run(sh: Arc<Shared>) {
    let max = sh.cfg.complete_batch_max;
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        if sh.outbox.is_empty() {
            tokio::select! {
                biased;
                _ = sh.outbox.ready() => {}
                _ = sh.tokens.executors_done.cancelled() => {
                    // Every executor has handed over its outcome.
                    if sh.outbox.is_empty() {
                        break;
                    }
                }
            }
        }
        if sh.outbox.producers_busy() && !sh.tokens.executors_done.is_cancelled() {
            tokio::time::sleep(LINGER).await;
        }
        let slot = slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        let batch = sh.outbox.take(max);
        if batch.is_empty() {
            continue;
        }
        // Tracked, not owned by this task: a flush in flight outlives a
        // restart of the completer, and shutdown waits for it.
        let sh2 = sh.clone();
        sh.flushes.spawn(async move {
            flush(sh2, batch).await;
            drop(slot);
        });
    }
    sh.flushes.close();
    sh.flushes.wait().await;
}

/// Writes `batch`'s outcomes and claims per `claim` (nothing, for
/// [`JobClaimParams::NONE`]), in one statement: the outcomes go straight
/// from the outbox into the statement's arrays.
pub(crate) async fn write(
    sh: &Shared,
    batch: &[Done],
    claim: &JobClaimParams<'_>,
) -> Result<(Written, Vec<ClaimedJob>)> {
    let cols =
        FinishColumns::of(batch.iter().map(|d| (d.lease, &d.outcome)), sh.cfg.keep_completed, &|t| sh.db.redact(t));
    let conn = sh.db.conn().await?;
    q::finish_claim(conn.on(), &cols, claim).await
}

/// Writes one batch, retrying until it is written. Only at shutdown, after
/// the flush deadline, does it give up: those jobs keep their leases, which
/// expire, and the rescuer runs them again (at least once still holds).
pub(crate) async fn flush(sh: Arc<Shared>, mut batch: Batch) {
    let mut wait = Duration::from_millis(50);
    let mut first_failure: Option<Instant> = None;
    loop {
        let err = match write(&sh, &batch, &JobClaimParams::NONE).await {
            Ok((written, _)) => {
                record(&sh, batch, &written);
                return;
            }
            Err(e) => e,
        };
        if matches!(err, Error::InvalidInput { .. }) {
            tracing::error!(error = %err, jobs = batch.len(), "outcomes refused as invalid; their leases will expire");
            give_up(&sh, batch);
            return;
        }
        if refused(&err) {
            return isolate(sh, batch, err).await;
        }
        if ambiguous(&err) {
            batch.mark_resent();
        }
        let since = *first_failure.get_or_insert_with(Instant::now);
        sh.events.emit(Event::FlushFailed { pending: batch.len(), error: err.to_string() });
        if sh.tokens.executors_done.is_cancelled() && since.elapsed() >= sh.cfg.flush_deadline {
            let ids: Vec<i64> = batch.iter().map(|d| d.lease.id).collect();
            tracing::error!(error = %err, ?ids, "shutting down with outcomes unwritten; the rescuer will run these jobs again");
            give_up(&sh, batch);
            return;
        }
        if archive_attach_race(&err) {
            // Not a failure: written at the next try (backed off as any
            // other, should it ever persist).
            tracing::debug!(error = %err, jobs = batch.len(),
                "the archive's table for today was made under this write; writing it again");
        } else {
            tracing::warn!(error = %err, jobs = batch.len(), "writing outcomes failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = sh.db_back.notified() => {}
        }
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// The database refused a batch for what it holds: writes its outcomes one
/// by one, so only the one at fault is affected; that one is tried once
/// more with its error text made plain ASCII, then given up.
async fn isolate(sh: Arc<Shared>, batch: Batch, first: Error) {
    tracing::warn!(error = %first, jobs = batch.len(), "the database refused a batch of outcomes; writing them one by one");
    for one in batch.split() {
        let mut one = one;
        for plain in [false, true] {
            if plain {
                one.plain_errors();
            }
            match write(&sh, &one, &JobClaimParams::NONE).await {
                Ok((written, _)) => {
                    record(&sh, one, &written);
                    break;
                }
                Err(e) if refused(&e) && !plain => continue,
                Err(e) if refused(&e) || matches!(e, Error::InvalidInput { .. }) => {
                    tracing::error!(error = %e, id = one[0].lease.id,
                        "the database refused this outcome; its lease will expire and the job run again");
                    give_up(&sh, one);
                    break;
                }
                // Not the content's fault after all: back to the outbox.
                Err(_) => break,
            }
        }
    }
}

/// Whether the database refused the statement for the data it carries
/// (data exception, program limit), so writing it again cannot help.
pub(crate) fn refused(e: &Error) -> bool {
    e.sqlstate().is_some_and(|c| c.starts_with("22") || c.starts_with("54"))
}

/// Whether the database refused outcomes because the leader's archive pass
/// attached today's partition while they were on their way: PostgreSQL
/// routes a row to the default partition before it waits for the pass's
/// lock, then finds the default's bounds changed (`23514 … jobs_archive_default
/// violates partition constraint`). Only on a database whose days were not
/// made ahead (a fresh one's first archive pass); the same write succeeds
/// when sent again, so it is retried without a warning.
pub(crate) fn archive_attach_race(e: &Error) -> bool {
    e.sqlstate() == Some("23514") && e.to_string().contains("jobs_archive_default")
}

/// Whether a failed statement may have been carried out anyway: the answer
/// was lost (a dropped connection, a timeout), not an error from the server.
pub(crate) fn ambiguous(e: &Error) -> bool {
    matches!(e, Error::Timeout { .. }) || (matches!(e, Error::Transient(_)) && e.sqlstate().is_none())
}

/// Gives up on `batch`: its attempts are no longer held here (their leases
/// run out and the rescuer takes the jobs back).
fn give_up(sh: &Shared, batch: Batch) {
    for d in batch.iter() {
        sh.running.forget(d.lease);
        sh.stats.forget(d.lease); // dashboard statistics: never finished here
    }
    batch.done();
}

/// Says in the log how an attempt that did not succeed ended, as it was
/// written: one WARN per failed attempt that runs again (with when), one
/// ERROR per discard, INFO for a cancel, all under the target
/// `skiplock::jobs` (so `skiplock::jobs=error` keeps the discards only). Returns the error text as stored
/// (redacted, trimmed), for the event.
fn log_failure(sh: &Shared, d: &Done, state: JobState) -> Option<String> {
    let text = |s: &str| crate::db::job::error_text(&sh.db.redact(s));
    let (id, kind, queue, attempt) = (d.lease.id, d.kind.as_str(), d.queue.name.as_str(), d.attempt);
    match (&d.outcome, state) {
        (Outcome::Failed { error, .. }, JobState::Discarded) => {
            let error = text(error);
            tracing::error!(target: "skiplock::jobs", id, kind, queue, attempt, %error, "job discarded: its last attempt failed");
            Some(error)
        }
        (Outcome::Failed { error, retry_in }, JobState::Retryable | JobState::Available) => {
            let error = text(error);
            let runs_at = chrono::Utc::now() + chrono::Duration::from_std(*retry_in).unwrap_or(chrono::Duration::MAX);
            tracing::warn!(target: "skiplock::jobs", id, kind, queue, attempt, %error, retry_in = ?retry_in, %runs_at,
                "job attempt failed; it runs again later");
            Some(error)
        }
        (Outcome::Discarded(reason), JobState::Discarded) => {
            let error = text(reason);
            tracing::error!(target: "skiplock::jobs", id, kind, queue, attempt, %error, "job discarded by its handler");
            Some(error)
        }
        (outcome, JobState::Cancelled) => {
            let reason = match outcome {
                Outcome::Cancelled(Some(r)) | Outcome::Failed { error: r, .. } => Some(text(r)),
                _ => None,
            };
            tracing::info!(
                target: "skiplock::jobs",
                id,
                kind,
                queue,
                attempt,
                reason = reason.as_deref().unwrap_or("cancelled while running"),
                "job cancelled"
            );
            reason
        }
        _ => None,
    }
}

/// Accounts for a written batch: metrics, events, stale warnings, the
/// attempts no longer held, and the outbox room it held.
pub(crate) fn record(sh: &Shared, batch: Batch, written: &Written) {
    let by_lease: HashMap<Lease, &Done> = batch.iter().map(|d| (d.lease, d)).collect();
    for &(lease, state) in &written.applied {
        if let Some(d) = by_lease.get(&lease) {
            let m = &d.queue.metrics;
            match (&d.outcome, state) {
                (Outcome::Completed, _) => m.completed.increment(1),
                (_, JobState::Discarded) => m.discarded.increment(1),
                (_, JobState::Cancelled) => m.cancelled.increment(1),
                (Outcome::Failed { .. }, _) => m.retried.increment(1),
                (Outcome::Snoozed(_), _) => m.snoozed.increment(1),
                _ => {}
            }
            // Dashboard statistics: how the attempt ended (stats.rs).
            sh.stats.finished(lease, &d.queue.name, &d.outcome, state);
        }
        sh.running.forget(lease);
        let error = by_lease.get(&lease).and_then(|d| log_failure(sh, d, state));
        sh.events.emit(Event::Finished { id: lease.id, state, error });
    }
    for &lease in &written.stale {
        sh.running.forget(lease);
        sh.stats.forget(lease); // dashboard statistics: never finished here
        match by_lease.get(&lease) {
            Some(d) if d.resent => tracing::info!(
                id = lease.id,
                "outcome not confirmed: an earlier attempt to write it lost its answer and may have written it"
            ),
            _ => tracing::warn!(
                id = lease.id,
                "outcome not written: the lease was lost (the job was rescued and may run again)"
            ),
        }
        if let Some(d) = by_lease.get(&lease) {
            d.queue.metrics.stale.increment(1);
        }
        sh.events.emit(Event::Stale { id: lease.id });
    }
    batch.done();
}
