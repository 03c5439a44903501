//! What all of a worker's tasks share: [`Shared`], and the tree of
//! cancellation tokens ([`Tokens`]) they stop by.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::Config;
use super::outbox::Outbox;
use super::queue::QueueRt;
use super::registry::Registry;
use super::running::RunningJobs;
use super::stats::Recorder;
use crate::db::Db;
use crate::events::{Event, Events, WakeSource};
use crate::handler::CancelReason;
use crate::job::Lease;

/// A worker's cancellation tokens:
///
/// ```text
/// root
/// ├── fetch      cancelled first at shutdown: producers stop claiming
/// ├── jobs       cancelled after the shutdown grace: every handler is asked
/// │   └── one per attempt (running.rs)              to stop
/// ├── kill       cancelled by stop_now: handlers are dropped without grace
/// └── services   cancelled last: heartbeat, registry, statistics writer,
///                listener, maintenance
/// ```
///
/// The completer hangs from none of them: it ends when every executor has
/// handed in its outcome and those are written (`executors_done`).
pub(crate) struct Tokens {
    pub root: CancellationToken,
    pub fetch: CancellationToken,
    pub jobs: CancellationToken,
    pub kill: CancellationToken,
    pub services: CancellationToken,
    /// Set once every executor has handed over its outcome.
    pub executors_done: CancellationToken,
}

impl Tokens {
    pub fn new() -> Self {
        let root = CancellationToken::new();
        Tokens {
            fetch: root.child_token(),
            jobs: root.child_token(),
            kill: root.child_token(),
            services: root.child_token(),
            executors_done: CancellationToken::new(),
            root,
        }
    }
}

/// State shared by all of a worker's tasks.
pub(crate) struct Shared {
    pub db: Db,
    pub cfg: Arc<Config>,
    pub queues: Vec<Arc<QueueRt>>,
    /// Every attempt held, from claim to written outcome.
    pub running: RunningJobs,
    pub events: Events,
    pub tokens: Tokens,
    /// Executors, awaited at shutdown.
    pub tracker: TaskTracker,
    /// The completer's writes in flight, awaited before it ends.
    pub flushes: TaskTracker,
    /// True while the LISTEN connection is up (producers poll at the
    /// shortest interval otherwise).
    pub listening: AtomicBool,
    /// Claims in flight hold it shared until their jobs are registered in
    /// `running`; a reconciliation takes it exclusively (producer.rs).
    pub claims: tokio::sync::RwLock<()>,
    /// Set when a claim's answer was lost: the jobs it may have taken are
    /// given back before the next claim.
    pub reconcile_needed: AtomicBool,
    /// This process's worker id in the workers registry.
    pub registry: Arc<Registry>,
    /// Notified when a claim succeeds: writes waiting out a backoff after
    /// failures try again at once, the database being back.
    pub db_back: Notify,
    /// Outcomes waiting to be written.
    pub outbox: Arc<Outbox>,
    /// Per-minute statistics for the dashboard (stats.rs).
    pub stats: Arc<Recorder>,
}

impl Shared {
    pub fn queue(&self, name: &str) -> Option<&Arc<QueueRt>> {
        self.queues.iter().find(|q| q.name == name)
    }

    /// Asks the handler of one attempt to stop, if it still runs; true if
    /// it was asked now.
    pub fn cancel_lease(&self, lease: Lease, reason: CancelReason) -> bool {
        let asked = self.running.cancel(lease, reason);
        if asked {
            self.events.emit(Event::CancelRequested { id: lease.id, reason });
        }
        asked
    }

    /// Asks the running attempts of job `id` to stop (an operator's cancel).
    pub fn cancel_job(&self, id: i64, reason: CancelReason) {
        for lease in self.running.running_of(id) {
            self.cancel_lease(lease, reason);
        }
    }

    /// Wakes every producer (after a lost LISTEN connection came back).
    pub fn wake_all(&self, source: WakeSource) {
        for q in &self.queues {
            q.wake(source, true);
        }
    }
}
