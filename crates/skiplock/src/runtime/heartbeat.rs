//! Keeps running jobs' leases alive with one statement for all of them, and
//! stops handlers whose lease was lost, or can no longer be confirmed, before
//! it runs out: no job runs in two places at once.
//!
//! Leases of attempts whose handler has ended but whose outcome is not
//! written yet are extended too, so a slow database delays outcomes without
//! letting their jobs be rescued and run again. The heartbeat has a
//! connection of its own, so a busy pool never delays it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::running::BeatSnapshot;
use crate::Client;
use crate::db::job::Registered;
use crate::error::Error;
use crate::handler::CancelReason;

pub(crate) async fn run(sh: Arc<Shared>, db: Client) {
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
        for lease in sh.running.expiring(now, margin) {
            if sh.cancel_lease(lease, CancelReason::LeaseLost) {
                tracing::warn!(
                    id = lease.id,
                    "lease not confirmed in time; stopping the handler before another worker may start it"
                );
            }
        }
        // One heartbeat in flight at a time; the deadline checks above go on
        // while it waits on a slow or absent database.
        if now >= next_beat && beat.as_ref().is_none_or(|b| b.is_finished()) {
            next_beat = now + sh.cfg.heartbeat_interval;
            beat = Some(tokio::spawn(beat_once(sh.clone(), db.clone())));
        }
    }
    if let Some(b) = beat {
        b.abort();
    }
}

async fn beat_once(sh: Arc<Shared>, db: Client) {
    let snap = sh.running.beat_snapshot();
    // The registry entry lives as long as the leases do, so it is kept alive
    // by the same statement, and by a heartbeat of no leases when idle.
    let registered = sh.registry.is_registered();
    if snap.leases.is_empty() && !registered {
        return;
    }
    let worker = registered.then(|| Registered {
        id: &sh.cfg.worker_id,
        instance: sh.registry.instance,
        running: i32::try_from(sh.running.running()).unwrap_or(i32::MAX),
    });
    let sent = Instant::now();
    let result = match db.heartbeat_with_progress(&snap.leases, sh.cfg.lease, &snap.progress, worker).await {
        // Progress the database refuses (set_progress checks what it can,
        // but not every limit) must not cost every job its lease: drop it
        // and extend the leases without it.
        Err(e) if refused_data(&e) && snap.progress.iter().any(Option::is_some) => {
            let with: Vec<_> =
                snap.leases.iter().zip(&snap.progress).filter(|(_, p)| p.is_some()).map(|(l, _)| *l).collect();
            tracing::warn!(error = %e, jobs = ?with.iter().map(|l| l.id).collect::<Vec<_>>(),
                "the database refused the jobs' progress; it is dropped");
            sh.running.drop_progress(&with);
            let bare = BeatSnapshot { progress: vec![None; snap.leases.len()], leases: snap.leases };
            let r = db.heartbeat_with_progress(&bare.leases, sh.cfg.lease, &bare.progress, worker).await;
            r.map(|beat| (beat, bare))
        }
        r => r.map(|beat| (beat, snap)),
    };
    match result {
        Ok((report, snap)) => {
            if registered && !report.registered {
                sh.registry.lost();
            }
            sh.running.extended(&snap, &report.extended, sent, sh.cfg.lease);
            if !snap.leases.is_empty() {
                sh.emit(super::Event::Heartbeat { extended: report.extended.len(), lost: report.lost.len() });
            }
            for lease in report.lost {
                // A job that finished since the heartbeat's snapshot is
                // "lost" too (its row is gone): only a running one matters.
                if sh.cancel_lease(lease, CancelReason::LeaseLost) {
                    tracing::warn!(id = lease.id, "lease lost (rescued or finished elsewhere); stopping the handler");
                }
            }
            for lease in report.cancel_requested {
                sh.cancel_lease(lease, CancelReason::Cancelled);
            }
        }
        Err(e) => tracing::warn!(error = %e, "heartbeat failed; leases are not extended"),
    }
}

/// Whether the database refused a value of the statement (data exception,
/// program limit), rather than failing for want of a connection.
fn refused_data(e: &Error) -> bool {
    e.sqlstate().is_some_and(|c| c.starts_with("22") || c.starts_with("54"))
}
