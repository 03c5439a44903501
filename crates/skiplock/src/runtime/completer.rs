//! Writes the outcomes no producer carried: when the queues are idle (the
//! producers wait instead of claiming), at shutdown, or when outcomes pile up
//! faster than claims take them. One `finish_claim` statement per batch,
//! claiming nothing, fenced by each job's lease token.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::{Done, Event, Shared};
use crate::client::{Finish, FinishReport, Outcome};
use crate::error::Error;
use crate::job::JobState;

/// Batches written at once, each on its own connection.
const IN_FLIGHT: usize = 2;
/// How long outcomes wait for a busy producer to carry them before the
/// completer writes them itself. About one claim's round trip.
const LINGER: Duration = Duration::from_millis(2);
/// Longest pause between attempts to write a batch.
const RETRY_MAX: Duration = Duration::from_secs(2);

pub(crate) async fn run(sh: Arc<Shared>) {
    let max = sh.cfg.complete_batch_max;
    let mut in_flight = JoinSet::new();
    loop {
        if sh.outbox.is_empty() {
            tokio::select! {
                biased;
                _ = sh.outbox.ready() => {}
                _ = sh.executors_done.cancelled() => {
                    // Every executor has handed over its outcome.
                    if sh.outbox.is_empty() {
                        break;
                    }
                }
            }
        }
        if sh.outbox.producers_busy() && !sh.executors_done.is_cancelled() {
            tokio::time::sleep(LINGER).await;
        }
        let batch = sh.outbox.take(max);
        if batch.is_empty() {
            continue;
        }
        while in_flight.len() >= IN_FLIGHT {
            in_flight.join_next().await;
        }
        in_flight.spawn(flush(sh.clone(), batch));
    }
    while in_flight.join_next().await.is_some() {}
}

/// The outcomes of `batch` as the client takes them.
pub(crate) fn finishes(batch: &[Done]) -> Vec<Finish> {
    batch.iter().map(|d| Finish { lease: d.lease, outcome: d.outcome.clone() }).collect()
}

/// Writes one batch, retrying until it is written. Only at shutdown, after
/// the flush deadline, does it give up: those jobs keep their leases, which
/// expire, and the rescuer runs them again (at least once still holds).
async fn flush(sh: Arc<Shared>, batch: Vec<Done>) {
    let items = finishes(&batch);
    let mut wait = Duration::from_millis(50);
    let mut first_failure: Option<Instant> = None;
    loop {
        let err = match sh.client.finish_with(&items, sh.cfg.keep_completed).await {
            Ok(report) => {
                record(&sh, &batch, &report);
                return;
            }
            Err(e) => e,
        };
        if matches!(err, Error::InvalidInput { .. }) {
            tracing::error!(error = %err, jobs = items.len(), "outcomes refused as invalid; their leases will expire");
            sh.outbox.written(batch.len());
            return;
        }
        let since = *first_failure.get_or_insert_with(Instant::now);
        sh.emit(Event::FlushFailed { pending: items.len(), error: err.to_string() });
        if sh.executors_done.is_cancelled() && since.elapsed() >= sh.cfg.flush_deadline {
            let ids: Vec<i64> = items.iter().map(|f| f.lease.id).collect();
            tracing::error!(error = %err, ?ids, "shutting down with outcomes unwritten; the rescuer will run these jobs again");
            sh.outbox.written(batch.len());
            return;
        }
        tracing::warn!(error = %err, jobs = items.len(), "writing outcomes failed; retrying");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// Accounts for a written batch: metrics, events, stale warnings, and the
/// outbox room it held.
pub(crate) fn record(sh: &Shared, batch: &[Done], report: &FinishReport) {
    let by_id: HashMap<i64, &Done> = batch.iter().map(|d| (d.lease.id, d)).collect();
    for &(id, state) in &report.applied {
        if let Some(d) = by_id.get(&id) {
            let m = &d.queue.metrics;
            match (&d.outcome, state) {
                (Outcome::Completed, _) => m.completed.increment(1),
                (_, JobState::Discarded) => m.discarded.increment(1),
                (_, JobState::Cancelled) => m.cancelled.increment(1),
                (Outcome::Failed { .. }, _) => m.retried.increment(1),
                (Outcome::Snoozed(_), _) => m.snoozed.increment(1),
                _ => {}
            }
        }
        sh.emit(Event::Finished { id, state });
    }
    for &id in &report.stale {
        if let Some(d) = by_id.get(&id) {
            d.queue.metrics.stale.increment(1);
        }
        tracing::warn!(id, "outcome not written: the lease was lost (the job was rescued and may run again)");
        sh.emit(Event::Stale { id });
    }
    sh.outbox.written(batch.len());
}
