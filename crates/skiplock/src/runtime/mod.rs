//! The worker runtime: how the tasks of a running [`Worker`](crate::Worker)
//! fit together. Everything here reaches the database through the
//! crate-private handle ([`Db`]), never through the public `Client`.
//!
//! A job's path, file by file:
//!
//! 1. `producer.rs`: one or two per queue (`queue.rs`). Waits for room in
//!    the queue's budget (its free slots and the prefetch its jobs' run time
//!    calls for, `prefetch.rs`) and a reason to look (a wake-up, the poll
//!    interval, a full batch), claims a batch sized to the room in one
//!    statement that also carries waiting outcomes, registers each attempt
//!    in `running.rs`, and spawns an executor per job.
//! 2. `executor.rs`: waits for a free slot (or hands the job back unstarted
//!    at shutdown, on a cancel or a lost lease), then runs one handler under
//!    its timeout, catching panics and watching its cancellation token;
//!    decides the [`Outcome`] and puts it in the outbox (`outbox.rs`).
//! 3. `completer.rs`: writes the outcomes no producer carried, in batches,
//!    fenced by lease tokens; never drops one.
//!
//! Beside them: `heartbeat.rs` (a [`Service`](crate::service::Service):
//! extends every held lease in one statement and stops handlers whose lease
//! is lost or cannot be confirmed), `registry.rs` (a service: takes this
//! process's worker id in the workers registry before anything claims),
//! `stats.rs` (the dashboard's per-minute statistics: a recorder the
//! executor and the completer feed, and a service that writes them),
//! `wakeups.rs` (acts on what the LISTEN connection, [`crate::notify`],
//! publishes), and [`crate::maintenance`] (leader-only services).
//!
//! Shutdown is passed in, never global: a tree of `CancellationToken`s
//! ([`Tokens`]) and `TaskTracker`s for the executors and the writes in
//! flight.

pub(crate) mod backoff;
mod completer;
pub(crate) mod config;
mod depth_metrics;
mod executor;
mod heartbeat;
pub(crate) mod marks;
mod outbox;
mod prefetch;
mod producer;
mod queue;
mod registry;
mod running;
mod shared;
pub(crate) mod stats;
pub(crate) mod wakeups;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::db::Db;
use crate::events::{Event, Events};
use crate::maintenance::Services;
use crate::service::{self, Gate, supervise};
use config::Config;
use queue::QueueRt;
use running::RunningJobs;
use shared::{Shared, Tokens};

/// A started worker. Dropping it does not stop the worker; call
/// [`WorkerHandle::shutdown`].
pub struct WorkerHandle {
    shared: Arc<Shared>,
    producers: Mutex<Vec<JoinHandle<()>>>,
    completer: Mutex<Option<JoinHandle<()>>>,
    services: Mutex<Vec<JoinHandle<()>>>,
    register: Arc<registry::Register>,
    stopped: tokio::sync::OnceCell<()>,
}

impl WorkerHandle {
    /// Events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Jobs whose handlers are running now.
    pub fn running(&self) -> usize {
        self.shared.running.running()
    }

    /// Stops gracefully: no new claims; running jobs get the shutdown grace
    /// to finish, then are asked to stop and, if they do not within the
    /// cancel grace, dropped; their jobs go back to available without using
    /// an attempt. Every outcome is written before this returns (retried for
    /// the flush deadline if the database is away). Calling it again waits
    /// for the same shutdown.
    pub async fn shutdown(&self) {
        self.stopped.get_or_init(|| self.do_shutdown()).await;
    }

    /// Stops at once: running handlers are dropped now and their jobs
    /// released. Pair with [`WorkerHandle::shutdown`] to wait for the end.
    pub fn stop_now(&self) {
        let t = &self.shared.tokens;
        t.fetch.cancel();
        t.kill.cancel();
        self.shared.running.stop_all();
    }

    async fn do_shutdown(&self) {
        let sh = &self.shared;
        sh.tokens.fetch.cancel();
        let producers = std::mem::take(&mut *self.producers.lock().expect("not poisoned"));
        for p in producers {
            let _ = p.await;
        }
        sh.tracker.close();
        if tokio::time::timeout(sh.cfg.shutdown_grace, sh.tracker.wait()).await.is_err() {
            tracing::info!(running = self.running(), "shutdown grace over: stopping the remaining jobs");
            sh.running.stop_all();
            sh.tracker.wait().await;
        }
        sh.tokens.executors_done.cancel();
        let completer = self.completer.lock().expect("not poisoned").take();
        if let Some(c) = completer {
            let _ = c.await;
        }
        sh.tokens.services.cancel();
        let services = std::mem::take(&mut *self.services.lock().expect("not poisoned"));
        for s in services {
            let _ = s.await;
        }
        self.register.deregister().await;
        sh.tokens.root.cancel();
        sh.events.emit(Event::Stopped);
    }
}

/// The dashboard's statistics writer for this worker, on the worker's pool.
fn stats_writer(sh: &Shared) -> stats::StatsWriter {
    stats::StatsWriter::new(sh.db.clone(), sh.cfg.worker_id.clone(), sh.stats.clone())
}

/// Spawns a worker's tasks. `maintenance`: the services of this process's
/// maintenance, if it takes part in the election.
pub(crate) fn start(db: Db, cfg: Arc<Config>, events: Events, maintenance: Option<Arc<Services>>) -> WorkerHandle {
    let queues: Vec<Arc<QueueRt>> = cfg
        .queues
        .iter()
        .map(|(name, qc)| {
            let backoff = qc.backoff.clone().unwrap_or_else(|| cfg.backoff.clone());
            Arc::new(QueueRt::new(name, qc, backoff))
        })
        .collect();
    // Room for every held job's outcome plus a batch: executors wait for
    // room only when the database cannot keep up.
    let total: usize = queues.iter().map(|q| q.budget.capacity()).sum();
    let tokens = Tokens::new();
    let shared = Arc::new(Shared {
        db,
        cfg: cfg.clone(),
        queues,
        running: RunningJobs::new(tokens.jobs.clone()),
        events,
        tokens,
        tracker: TaskTracker::new(),
        flushes: TaskTracker::new(),
        listening: AtomicBool::new(false),
        claims: tokio::sync::RwLock::new(()),
        reconcile_needed: AtomicBool::new(false),
        registry: Arc::new(registry::Registry::new()),
        db_back: Notify::new(),
        outbox: Arc::new(outbox::Outbox::new(total + cfg.complete_batch_max)),
        stats: Arc::new(stats::Recorder::default()),
    });
    let stop = &shared.tokens;
    // Producers and the completer are restarted if they panic, as services
    // are: a bug in one claim must not stop a queue, nor one in a flush the
    // outcomes.
    let producers = shared
        .queues
        .iter()
        .flat_map(|q| {
            (0..q.wakers.len()).map(|i| {
                let (sh, q) = (shared.clone(), q.clone());
                supervise("producer", stop.fetch.clone(), move || producer::run(sh.clone(), q.clone(), i))
            })
        })
        .collect();
    let sh = shared.clone();
    // Never given up on: its outcomes must be written even at shutdown.
    let completer = supervise("completer", CancellationToken::new(), move || completer::run(sh.clone()));
    let register = Arc::new(registry::Register::new(
        shared.db.clone(),
        cfg.clone(),
        shared.events.clone(),
        shared.registry.clone(),
    ));
    let mut services = vec![
        service::spawn(Arc::new(heartbeat::Heartbeat::new(&shared)), Gate::Always, stop.services.clone()),
        service::spawn(register.clone(), Gate::Always, stop.services.clone()),
        service::spawn(Arc::new(stats_writer(&shared)), Gate::Always, stop.services.clone()),
        service::spawn(
            Arc::new(marks::Marks::new(shared.db.clone(), shared.queues.clone())),
            Gate::Always,
            stop.services.clone(),
        ),
    ];
    if cfg.depth_metrics {
        let depth = Arc::new(depth_metrics::DepthMetrics::new(shared.db.clone()));
        services.push(service::spawn(depth, Gate::Always, stop.services.clone()));
    }
    services.extend(wakeups::spawn(&shared));
    if let Some(m) = maintenance {
        services.extend(m.spawn(Some(shared.registry.watch()), &stop.services));
    }
    WorkerHandle {
        shared,
        producers: Mutex::new(producers),
        completer: Mutex::new(Some(completer)),
        services: Mutex::new(services),
        register,
        stopped: tokio::sync::OnceCell::new(),
    }
}
