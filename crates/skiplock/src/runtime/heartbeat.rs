//! Keeps running jobs' leases alive with one statement for all of them, and
//! stops handlers whose lease was lost, or can no longer be confirmed, before
//! it runs out: no job runs in two places at once.
//!
//! Leases of attempts whose handler has ended but whose outcome is not
//! written yet are extended too, so a slow database delays outcomes without
//! letting their jobs be rescued and run again. The heartbeat has a
//! connection of its own, so a busy pool never delays it.
//!
//! As a [`Service`], one pass checks every lease's deadline by this
//! process's clock (every twentieth of a lease) and, every third of a lease,
//! starts a heartbeat statement in a task of its own: the deadline checks go
//! on while a heartbeat waits on a slow or absent database.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::running::BeatSnapshot;
use super::shared::Shared;
use crate::db::Db;
use crate::db::job::{self as q, Beat, Registered};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::handler::CancelReason;
use crate::service::Service;

/// The heartbeat of one worker. Its settings come from the worker's lease
/// (checked by `WorkerBuilder::build`): deadlines checked every
/// `lease / 20` (at least 10ms), heartbeats sent every `lease / 3`, and a
/// handler stopped `lease / 4` before its lease runs out by this process's
/// clock.
pub(crate) struct Heartbeat {
    sh: Arc<Shared>,
    /// A connection of its own (the pool, if none could be set up).
    db: Db,
    check_every: Duration,
    margin: Duration,
    state: Mutex<BeatState>,
}

struct BeatState {
    next_beat: Instant,
    in_flight: Option<JoinHandle<()>>,
}

/// What one pass did.
pub(crate) struct Checked {
    /// Handlers stopped for want of a confirmed lease.
    #[allow(dead_code)]
    pub stopped: usize,
}

impl Heartbeat {
    pub fn new(sh: &Arc<Shared>) -> Self {
        let lease = sh.cfg.lease;
        let db = sh.db.dedicated(1).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "no connection of its own for the heartbeat; it shares the pool");
            sh.db.clone()
        });
        Heartbeat {
            sh: sh.clone(),
            db,
            check_every: (lease / 20).max(Duration::from_millis(10)),
            // The database's clock only ever gives a lease longer, as
            // deadlines are counted from when each heartbeat was sent.
            margin: lease / 4,
            state: Mutex::new(BeatState { next_beat: Instant::now() + sh.cfg.heartbeat_interval(), in_flight: None }),
        }
    }
}

impl Service for Heartbeat {
    const NAME: &'static str = "heartbeat";
    type Report = Checked;

    async fn run_once(&self) -> Result<Option<Checked>> {
        let sh = &self.sh;
        let now = Instant::now();
        let mut stopped = 0;
        for lease in sh.running.expiring(now, self.margin) {
            if sh.cancel_lease(lease, CancelReason::LeaseLost) {
                stopped += 1;
                tracing::warn!(
                    id = lease.id,
                    "lease not confirmed in time; stopping the handler before another worker may start it"
                );
            }
        }
        let mut st = self.state.lock().expect("not poisoned");
        if now >= st.next_beat && st.in_flight.as_ref().is_none_or(|b| b.is_finished()) {
            st.next_beat = now + sh.cfg.heartbeat_interval();
            st.in_flight = Some(tokio::spawn(beat_once(sh.clone(), self.db.clone())));
        }
        Ok(Some(Checked { stopped }))
    }

    fn next_pass(&self, _: &Result<Option<Checked>>) -> Duration {
        self.check_every
    }

    async fn stopped(&self) {
        let beat = self.state.lock().expect("not poisoned").in_flight.take();
        if let Some(b) = beat {
            b.abort();
        }
    }
}

/// One heartbeat statement for every lease held.
async fn beat_once(sh: Arc<Shared>, db: Db) {
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
    let lease_ms = sh.cfg.lease_ms;
    let send = |snap: &BeatSnapshot| {
        let (db, leases, progress) = (&db, snap.leases.clone(), snap.progress.clone());
        async move {
            let conn = db.conn().await?;
            q::heartbeat(conn.on(), &leases, lease_ms, &progress, worker).await
        }
    };
    let result: Result<(Beat, BeatSnapshot)> = match send(&snap).await {
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
            send(&bare).await.map(|beat| (beat, bare))
        }
        r => r.map(|beat| (beat, snap)),
    };
    match result {
        Ok((beat, snap)) => {
            if registered && !beat.registered {
                sh.registry.lost();
            }
            sh.running.extended(&snap, &beat.extended, sent, sh.cfg.lease);
            if !snap.leases.is_empty() {
                sh.events.emit(Event::Heartbeat { extended: beat.extended.len(), lost: beat.lost.len() });
            }
            for lease in beat.lost {
                // A job that finished since the heartbeat's snapshot is
                // "lost" too (its row is gone): only a running one matters.
                if sh.cancel_lease(lease, CancelReason::LeaseLost) {
                    tracing::warn!(id = lease.id, "lease lost (rescued or finished elsewhere); stopping the handler");
                }
            }
            for lease in beat.cancel_requested {
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
