//! Keeps running jobs' leases alive with one statement for all of them, and
//! stops handlers whose lease was lost, or can no longer be confirmed, before
//! it runs out: no job runs in two places at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use crate::handler::CancelReason;
use crate::job::Lease;

pub(crate) async fn run(sh: Arc<Shared>) {
    let lease = sh.cfg.lease;
    // Deadlines are checked often; heartbeats are sent every third of a lease.
    let check_every = (lease / 20).max(Duration::from_millis(10));
    // Stop a handler this long before its lease runs out by our clock (the
    // database's clock only ever gives it longer, as deadlines are counted
    // from when each heartbeat was sent).
    let margin = lease / 4;
    let mut tick = tokio::time::interval(check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_beat = Instant::now() + sh.cfg.heartbeat_interval;
    let mut beat: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = sh.services_stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let expiring: Vec<i64> = sh
            .running
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|(_, e)| now + margin >= e.deadline && !e.job.token.is_cancelled())
            .map(|(id, _)| *id)
            .collect();
        for id in expiring {
            tracing::warn!(id, "lease not confirmed in time; stopping the handler before another worker may start it");
            sh.cancel_running(id, CancelReason::LeaseLost);
        }
        // One heartbeat in flight at a time; the deadline checks above go on
        // while it waits on a slow or absent database.
        if now >= next_beat && beat.as_ref().is_none_or(|b| b.is_finished()) {
            next_beat = now + sh.cfg.heartbeat_interval;
            beat = Some(tokio::spawn(beat_once(sh.clone())));
        }
    }
    if let Some(b) = beat {
        b.abort();
    }
}

async fn beat_once(sh: Arc<Shared>) {
    let (leases, progress): (Vec<Lease>, Vec<Option<String>>) = {
        let running = sh.running.lock().expect("not poisoned");
        running
            .values()
            .filter(|e| e.job.cancel_reason() != Some(CancelReason::LeaseLost))
            .map(|e| (e.lease, e.job.progress.lock().expect("not poisoned").clone()))
            .unzip()
    };
    if leases.is_empty() {
        return;
    }
    let sent = Instant::now();
    match sh.client.heartbeat_with_progress(&leases, sh.cfg.lease, &progress).await {
        Ok(report) => {
            {
                let sent_progress: std::collections::HashMap<i64, &Option<String>> =
                    leases.iter().map(|l| l.id).zip(&progress).collect();
                let mut running = sh.running.lock().expect("not poisoned");
                for id in &report.extended {
                    if let Some(e) = running.get_mut(id) {
                        e.deadline = sent + sh.cfg.lease;
                        // Progress written: clear it unless the handler set newer.
                        let mut p = e.job.progress.lock().expect("not poisoned");
                        if sent_progress.get(id).is_some_and(|sent| **sent == *p) {
                            *p = None;
                        }
                    }
                }
            }
            sh.emit(super::Event::Heartbeat { extended: report.extended.len(), lost: report.lost.len() });
            for id in report.lost {
                // A job that finished since the heartbeat's snapshot is
                // "lost" too (its row is gone): only a running one matters.
                if sh.cancel_running(id, CancelReason::LeaseLost) {
                    tracing::warn!(id, "lease lost (rescued or finished elsewhere); stopping the handler");
                }
            }
            for id in report.cancel_requested {
                sh.cancel_running(id, CancelReason::Cancelled);
            }
        }
        Err(e) => tracing::warn!(error = %e, jobs = leases.len(), "heartbeat failed; leases are not extended"),
    }
}
