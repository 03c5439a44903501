//! The worker runtime: how the tasks of a running [`Worker`](crate::Worker)
//! fit together.
//!
//! - `producer`: one per queue. Waits for free slots (a `Semaphore` per
//!   queue) and a reason to look (NOTIFY, poll, more work), claims a batch
//!   sized to the free slots, spawns an executor per job.
//! - `executor`: runs one handler under its timeout, catching panics and
//!   watching its cancellation token; classifies the [`Outcome`] and hands it
//!   to the completer.
//! - `completer`: writes outcomes in batches, one statement each, fenced by
//!   lease tokens; never drops one (retries on database errors).
//! - `heartbeat`: extends every running job's lease in one statement, and
//!   stops handlers whose lease was lost or can no longer be confirmed.
//! - [`crate::notify`]: the LISTEN connection that wakes producers and
//!   delivers cancels.
//! - [`crate::maintenance`]: rescuer and scheduler.
//!
//! Shutdown is passed in, never global: a tree of `CancellationToken`s and a
//! `TaskTracker` for the executors.

pub(crate) mod backoff;
mod completer;
pub(crate) mod events;
mod executor;
mod heartbeat;
mod outbox;
mod producer;
pub(crate) mod registry;
mod running;
pub(crate) mod stats;

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, broadcast};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use events::{Event, WakeSource};

use crate::Backoff;
use crate::client::{Client, Outcome};
use crate::handler::CancelReason;
use crate::job::Lease;
use crate::worker::Config;
use running::RunningJobs;

/// One queue as the runtime sees it.
pub(crate) struct QueueRt {
    pub name: String,
    pub concurrency: usize,
    /// Free execution slots, shared by the queue's producers.
    pub slots: Arc<Semaphore>,
    /// One waker per producer (NOTIFY, reconnect, resume, a sibling's full
    /// batch).
    pub wakers: Vec<Notify>,
    /// Why it was last woken (a [`WakeSource`] as u8), for events.
    pub wake_source: AtomicU8,
    pub backoff: Backoff,
    pub metrics: QueueMetrics,
}

/// Claims in flight per queue at most. With one, a queue of quick jobs
/// alternates between claiming and running; with two, one claim's round
/// trip (and commit) overlaps the other's, and their commits share fsyncs.
pub(crate) const PRODUCERS_PER_QUEUE: usize = 2;

impl QueueRt {
    /// Wakes the first producer, or all of them.
    pub fn wake(&self, source: WakeSource, all: bool) {
        self.wake_source.store(source as u8, Ordering::Relaxed);
        let n = if all { self.wakers.len() } else { 1 };
        for w in &self.wakers[..n] {
            w.notify_one();
        }
    }

    /// Most jobs one of its producers claims at once.
    pub fn claim_cap(&self, claim_batch_max: usize) -> usize {
        self.concurrency.div_ceil(self.wakers.len()).clamp(1, claim_batch_max)
    }
}

/// Metric handles for one queue, looked up once.
pub(crate) struct QueueMetrics {
    pub claimed: metrics::Counter,
    pub completed: metrics::Counter,
    pub retried: metrics::Counter,
    pub discarded: metrics::Counter,
    pub cancelled: metrics::Counter,
    pub snoozed: metrics::Counter,
    pub stale: metrics::Counter,
    pub latency: metrics::Histogram,
}

impl QueueMetrics {
    fn new(queue: &str) -> Self {
        let q = queue.to_owned();
        QueueMetrics {
            claimed: metrics::counter!("skiplock_jobs_claimed_total", "queue" => q.clone()),
            completed: metrics::counter!("skiplock_jobs_completed_total", "queue" => q.clone()),
            retried: metrics::counter!("skiplock_jobs_retried_total", "queue" => q.clone()),
            discarded: metrics::counter!("skiplock_jobs_discarded_total", "queue" => q.clone()),
            cancelled: metrics::counter!("skiplock_jobs_cancelled_total", "queue" => q.clone()),
            snoozed: metrics::counter!("skiplock_jobs_snoozed_total", "queue" => q.clone()),
            stale: metrics::counter!("skiplock_completions_stale_total", "queue" => q.clone()),
            latency: metrics::histogram!("skiplock_job_start_latency_seconds", "queue" => q),
        }
    }
}

/// An outcome on its way to the completer.
pub(crate) struct Done {
    pub lease: Lease,
    pub outcome: Outcome,
    pub queue: Arc<QueueRt>,
    /// Whether it holds a place in the outbox's room (see
    /// [`outbox::Outbox::push_now`]).
    pub holds_room: bool,
    /// Whether a statement that carried it lost its answer (so it may have
    /// been written already).
    pub resent: bool,
}

/// State shared by all of a worker's tasks.
pub(crate) struct Shared {
    pub client: Client,
    pub cfg: Arc<Config>,
    pub queues: Vec<Arc<QueueRt>>,
    /// Every attempt held, from claim to written outcome.
    pub running: RunningJobs,
    pub events: broadcast::Sender<Event>,
    /// Executors, awaited at shutdown.
    pub tracker: TaskTracker,
    /// The completer's writes in flight, awaited before it ends.
    pub flushes: TaskTracker,
    /// Cancelled first at shutdown: producers stop claiming.
    pub fetch_stop: CancellationToken,
    /// Cancelled at `stop_now`: handlers are dropped without grace.
    pub kill: CancellationToken,
    /// Cancelled last: heartbeat, listener and maintenance stop.
    pub services_stop: CancellationToken,
    /// Set once every executor has handed over its outcome.
    pub executors_done: CancellationToken,
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
    pub registry: registry::Registry,
    /// Notified when a claim succeeds: writes waiting out a backoff after
    /// failures try again at once, the database being back.
    pub db_back: Notify,
    /// Outcomes waiting to be written.
    pub outbox: Arc<outbox::Outbox>,
    /// Per-minute statistics for the dashboard (stats.rs).
    pub stats: stats::Recorder,
}

impl Shared {
    /// Sends an event if anyone listens.
    pub fn emit(&self, ev: Event) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(ev);
        }
    }

    pub fn queue(&self, name: &str) -> Option<&Arc<QueueRt>> {
        self.queues.iter().find(|q| q.name == name)
    }

    /// Asks the handler of one attempt to stop, if it still runs; true if
    /// it was asked now.
    pub fn cancel_lease(&self, lease: Lease, reason: CancelReason) -> bool {
        let asked = self.running.cancel(lease, reason);
        if asked {
            self.emit(Event::CancelRequested { id: lease.id, reason });
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

/// A started worker. Dropping it does not stop the worker; call
/// [`WorkerHandle::shutdown`].
pub struct WorkerHandle {
    shared: Arc<Shared>,
    producers: Mutex<Vec<JoinHandle<()>>>,
    completer: Mutex<Option<JoinHandle<()>>>,
    services: Mutex<Vec<JoinHandle<()>>>,
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
        self.shared.fetch_stop.cancel();
        self.shared.kill.cancel();
        self.shared.running.cancel_all(CancelReason::Shutdown);
    }

    async fn do_shutdown(&self) {
        let sh = &self.shared;
        sh.fetch_stop.cancel();
        let producers = std::mem::take(&mut *self.producers.lock().expect("not poisoned"));
        for p in producers {
            let _ = p.await;
        }
        sh.tracker.close();
        if tokio::time::timeout(sh.cfg.shutdown_grace, sh.tracker.wait()).await.is_err() {
            tracing::info!(running = self.running(), "shutdown grace over: stopping the remaining jobs");
            sh.running.cancel_all(CancelReason::Shutdown);
            sh.tracker.wait().await;
        }
        sh.executors_done.cancel();
        let completer = self.completer.lock().expect("not poisoned").take();
        if let Some(c) = completer {
            let _ = c.await;
        }
        sh.services_stop.cancel();
        let services = std::mem::take(&mut *self.services.lock().expect("not poisoned"));
        for s in services {
            let _ = s.await;
        }
        registry::deregister(sh).await;
        sh.emit(Event::Stopped);
    }
}

/// Spawns a worker's tasks.
pub(crate) fn start(client: Client, cfg: Arc<Config>, events: broadcast::Sender<Event>) -> WorkerHandle {
    let queues: Vec<Arc<QueueRt>> = cfg
        .queues
        .iter()
        .map(|(name, qc)| {
            Arc::new(QueueRt {
                name: name.clone(),
                concurrency: qc.concurrency,
                slots: Arc::new(Semaphore::new(qc.concurrency)),
                wakers: (0..PRODUCERS_PER_QUEUE.min(qc.concurrency)).map(|_| Notify::new()).collect(),
                wake_source: AtomicU8::new(WakeSource::Poll as u8),
                backoff: qc.backoff.clone().unwrap_or_else(|| cfg.backoff.clone()),
                metrics: QueueMetrics::new(name),
            })
        })
        .collect();
    // Room for every slot's outcome plus a batch: executors wait for room
    // only when the database cannot keep up.
    let total: usize = queues.iter().map(|q| q.concurrency).sum();
    let outbox = Arc::new(outbox::Outbox::new(total + cfg.complete_batch_max));
    let shared = Arc::new(Shared {
        client,
        cfg: cfg.clone(),
        queues,
        running: RunningJobs::default(),
        events,
        tracker: TaskTracker::new(),
        flushes: TaskTracker::new(),
        fetch_stop: CancellationToken::new(),
        kill: CancellationToken::new(),
        services_stop: CancellationToken::new(),
        executors_done: CancellationToken::new(),
        listening: AtomicBool::new(false),
        claims: tokio::sync::RwLock::new(()),
        reconcile_needed: AtomicBool::new(false),
        registry: registry::Registry::new(),
        db_back: Notify::new(),
        outbox,
        stats: stats::Recorder::default(),
    });
    // Producers and the completer are restarted if they panic, as services
    // are: a bug in one claim must not stop a queue, nor one in a flush the
    // outcomes.
    let producers = shared
        .queues
        .iter()
        .flat_map(|q| {
            (0..q.wakers.len()).map(|i| {
                let (sh, q) = (shared.clone(), q.clone());
                supervise("producer", shared.fetch_stop.clone(), move || producer::run(sh.clone(), q.clone(), i))
            })
        })
        .collect();
    let sh = shared.clone();
    // Never given up on: its outcomes must be written even at shutdown.
    let completer = supervise("completer", CancellationToken::new(), move || completer::run(sh.clone()));
    let sh = shared.clone();
    let beat_db = shared.client.dedicated(1).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "no connection of its own for the heartbeat; it shares the pool");
        shared.client.clone()
    });
    let mut services = vec![spawn_service(&shared, "heartbeat", move || heartbeat::run(sh.clone(), beat_db.clone()))];
    let sh = shared.clone();
    services.push(spawn_service(&shared, "listener", move || crate::notify::run(sh.clone())));
    let sh = shared.clone();
    services.push(spawn_service(&shared, "registry", move || registry::run(sh.clone())));
    let sh = shared.clone();
    services.push(spawn_service(&shared, "stats", move || stats::run(sh.clone())));
    if cfg.maintenance {
        services.extend(crate::maintenance::spawn(shared.clone()));
    }
    WorkerHandle {
        shared,
        producers: Mutex::new(producers),
        completer: Mutex::new(Some(completer)),
        services: Mutex::new(services),
        stopped: tokio::sync::OnceCell::new(),
    }
}

/// Spawns a long-running service, restarting it if it panics: a bug in one
/// pass must not leave the worker without its heartbeat, its listener or
/// its maintenance. It ends when the service returns (at shutdown).
pub(crate) fn spawn_service<F, Fut>(sh: &Arc<Shared>, name: &'static str, service: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    supervise(name, sh.services_stop.clone(), service)
}

/// Runs `task` until it returns, restarting it a second after each panic
/// (unless `stop` was cancelled meanwhile).
pub(crate) fn supervise<F, Fut>(name: &'static str, stop: CancellationToken, task: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let service = task;
    tokio::spawn(async move {
        loop {
            match tokio::spawn(service()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    tracing::error!(service = name, "service panicked; restarting it in a second");
                    metrics::counter!("skiplock_service_panics_total", "service" => name).increment(1);
                    if !sleep_or(&stop, Duration::from_secs(1)).await {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    })
}

/// Sleeps for `d` unless `stop` fires first; true if it slept in full.
pub(crate) async fn sleep_or(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
