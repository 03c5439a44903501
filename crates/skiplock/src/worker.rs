//! [`Worker`]: runs jobs. Build one with [`Worker::builder`], register a
//! handler per job type, name the queues it serves, then `start` or `run` it.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::handler::{ErasedHandler, JobContext, JobError, RawHandler, State, TypedHandler};
use crate::job::Job;
use crate::maintenance::{MaintenanceConfig, PeriodicJob, Retention, Services};
use crate::runtime::config::*;
use crate::runtime::{self, WorkerHandle};
use crate::validate;
use crate::{Backoff, StatementMode};

/// Builds a [`Worker`].
///
/// # Example
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
/// use skiplock::{Client, Job, JobContext, JobError, Worker};
///
/// #[derive(Serialize, Deserialize)]
/// struct Resize { image_id: u64 }
/// impl Job for Resize { const KIND: &'static str = "resize"; }
///
/// async fn resize(job: Resize, ctx: JobContext) -> Result<(), JobError> {
///     println!("resizing {} (attempt {})", job.image_id, ctx.attempt());
///     Ok(())
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::connect("postgres://localhost/app")?;
/// let worker = Worker::builder(client)
///     .queue("default", 50)
///     .register(resize)
///     .build()?;
/// worker.run_until_signal().await?; // ctrl-c: finish running jobs, then stop
/// # Ok(()) }
/// ```
pub struct WorkerBuilder {
    client: Client,
    cfg: Config,
    /// Whether this process takes part in the election.
    maintenance_on: bool,
    maintenance: MaintenanceConfig,
    errors: Vec<Error>,
    /// Whether what no worker here would run is a warning, not an error.
    allow_unserved: bool,
}

impl WorkerBuilder {
    /// Serves `queue` with up to `concurrency` jobs at once.
    pub fn queue(self, queue: impl Into<String>, concurrency: usize) -> Self {
        self.queue_with(queue, QueueConfig::new(concurrency))
    }

    /// Serves `queue` with its own settings.
    pub fn queue_with(mut self, queue: impl Into<String>, config: QueueConfig) -> Self {
        let queue = queue.into();
        if let Err(e) = validate::queue("queue", &queue) {
            self.errors.push(e);
        } else if config.concurrency == 0 {
            self.errors.push(Error::invalid("concurrency", format!("queue {queue:?} needs at least 1")));
        } else if config.prefetch > crate::PREFETCH_MAX {
            let max = crate::PREFETCH_MAX;
            self.errors.push(Error::invalid("prefetch", format!("queue {queue:?} may hold at most {max} jobs ahead")));
        } else if config.prefetch_wait.is_zero() || config.prefetch_wait > crate::PREFETCH_WAIT_MAX {
            self.errors.push(Error::invalid(
                "prefetch_wait",
                format!("queue {queue:?} needs between 1ms and {}s", crate::PREFETCH_WAIT_MAX.as_secs()),
            ));
        } else if self.cfg.queues.iter().any(|(q, _)| *q == queue) {
            self.errors.push(Error::invalid("queue", format!("{queue:?} is configured twice")));
        } else {
            self.cfg.queues.push((queue, config));
        }
        self
    }

    /// Runs jobs of type `J` with `handler`, an async function of the job's
    /// args and its [`JobContext`]. One handler per kind.
    pub fn register<J, F, Fut>(self, handler: F) -> Self
    where
        J: Job,
        F: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        let h = TypedHandler { f: handler, _job: PhantomData::<fn(J)> };
        self.add(J::KIND, Arc::new(h), J::TIMEOUT, Some(J::QUEUE))
    }

    /// Runs jobs of type `J` with `handler`, which also gets `state` (a
    /// database pool, an HTTP client, your app's settings) as [`State`],
    /// cloned for each attempt, as axum hands a router's state to its
    /// handlers. Keep `state` cheap to clone: an `Arc`, or handles that
    /// are (`sqlx::PgPool`, `reqwest::Client`, a `Client`).
    ///
    /// # Example: a handler with the app's pool
    ///
    /// ```no_run
    /// use serde::{Deserialize, Serialize};
    /// use skiplock::{Client, Job, JobContext, JobError, State, Worker};
    ///
    /// #[derive(Clone)]
    /// struct App { db: skiplock::deadpool_postgres::Pool }
    ///
    /// #[derive(Serialize, Deserialize)]
    /// struct Welcome { user_id: i64 }
    /// impl Job for Welcome { const KIND: &'static str = "welcome"; }
    ///
    /// async fn welcome(job: Welcome, _ctx: JobContext, State(app): State<App>) -> Result<(), JobError> {
    ///     let conn = app.db.get().await?;
    ///     conn.execute("UPDATE users SET welcomed = true WHERE id = $1", &[&job.user_id]).await?;
    ///     Ok(())
    /// }
    ///
    /// # fn run(client: Client, app: App) -> skiplock::Result<()> {
    /// let worker = Worker::builder(client).queue("default", 10).register_with(app, welcome).build()?;
    /// # Ok(()) }
    /// ```
    pub fn register_with<J, S, F, Fut>(self, state: S, handler: F) -> Self
    where
        J: Job,
        S: Clone + Send + Sync + 'static,
        F: Fn(J, JobContext, State<S>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.register(move |job: J, ctx| handler(job, ctx, State(state.clone())))
    }

    /// Runs jobs of `kind` with `handler`, which gets the args as raw JSON:
    /// for handlers that are not Rust types (the CLI's `work --exec`).
    /// `timeout` overrides the worker's default for this kind.
    pub fn register_raw<F, Fut>(self, kind: &str, timeout: Option<Duration>, handler: F) -> Self
    where
        F: Fn(Box<serde_json::value::RawValue>, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.add(kind, Arc::new(RawHandler { f: handler }), timeout, None)
    }

    /// Runs jobs of every kind that has no handler of its own with
    /// `handler` (raw JSON args; `ctx.kind()` says which kind): a generic
    /// worker such as the CLI's `work --exec`. Without one, a job of an
    /// unknown kind fails its attempt with an error saying so.
    pub fn register_any<F, Fut>(mut self, timeout: Option<Duration>, handler: F) -> Self
    where
        F: Fn(Box<serde_json::value::RawValue>, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        if self.cfg.fallback.is_some() {
            self.errors.push(Error::invalid("kind", "a catch-all handler is registered twice"));
        } else {
            self.cfg.fallback =
                Some(HandlerEntry { handler: Arc::new(RawHandler { f: handler }), timeout, queue: None });
        }
        self
    }

    fn add(
        mut self,
        kind: &str,
        handler: Arc<dyn ErasedHandler>,
        timeout: Option<Duration>,
        queue: Option<&'static str>,
    ) -> Self {
        if let Err(e) = validate::kind("kind", kind) {
            self.errors.push(e);
        } else if self.cfg.handlers.contains_key(kind) {
            self.errors.push(Error::invalid("kind", format!("{kind:?} is registered twice")));
        } else {
            self.cfg.handlers.insert(kind.to_owned(), HandlerEntry { handler, timeout, queue });
        }
        self
    }

    /// The retry policy for queues without their own (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.cfg.backoff = backoff;
        self
    }
    /// How long a claimed job stays leased without a heartbeat (default
    /// [`LEASE_DEFAULT`], at least 100ms). Heartbeats come every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.cfg.lease = lease;
        self
    }
    /// Poll interval while idle, and its backed-off maximum (defaults
    /// [`POLL_INTERVAL_DEFAULT`], [`POLL_INTERVAL_MAX_DEFAULT`]).
    pub fn poll_interval(mut self, min: Duration, max: Duration) -> Self {
        self.cfg.poll_interval = min;
        self.cfg.poll_interval_max = max.max(min);
        self
    }
    /// Most jobs per claim (default [`CLAIM_BATCH_MAX_DEFAULT`]).
    pub fn claim_batch_max(mut self, n: usize) -> Self {
        self.cfg.claim_batch_max = n.max(1);
        self
    }
    /// Most outcomes per completion statement (default [`COMPLETE_BATCH_MAX_DEFAULT`]).
    pub fn complete_batch_max(mut self, n: usize) -> Self {
        self.cfg.complete_batch_max = n.max(1);
        self
    }
    /// The default attempt timeout (default [`TIMEOUT_DEFAULT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.cfg.timeout = timeout;
        self
    }
    /// How long running jobs may finish at shutdown (default [`SHUTDOWN_GRACE_DEFAULT`]).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.cfg.shutdown_grace = grace;
        self
    }
    /// How long a handler asked to stop may take (default [`CANCEL_GRACE_DEFAULT`]).
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cfg.cancel_grace = grace;
        self
    }
    /// How often the rescuer runs (default [`RESCUE_INTERVAL_DEFAULT`](crate::RESCUE_INTERVAL_DEFAULT)).
    pub fn rescue_interval(mut self, every: Duration) -> Self {
        self.maintenance.rescuer.interval = every;
        self
    }
    /// Longest sleep of the scheduler (default [`SCHEDULER_INTERVAL_DEFAULT`](crate::SCHEDULER_INTERVAL_DEFAULT)).
    pub fn scheduler_interval(mut self, every: Duration) -> Self {
        self.maintenance.scheduler.interval = every;
        self
    }
    /// Whether completed jobs are kept in the archive (default true, for the
    /// retention period) or deleted as they complete. Deleting saves the
    /// archive insert, the costliest part of completing a job (see
    /// docs/BENCHMARKS.md); cancelled and discarded jobs are always kept.
    pub fn keep_completed(mut self, keep: bool) -> Self {
        self.cfg.keep_completed = keep;
        self
    }
    /// Whether this worker records the queue depth the leader counts as
    /// gauges (`skiplock_queue_jobs`, `skiplock_queue_oldest_available_seconds`,
    /// `skiplock_queue_depth_age_seconds`; default false): a read of a few
    /// small rows every [`STATS_DEPTH_INTERVAL`](crate::STATS_DEPTH_INTERVAL),
    /// never a count of the jobs table. Turn it on where a `metrics`
    /// recorder is installed; see [`DepthGauges`](crate::DepthGauges).
    pub fn depth_metrics(mut self, on: bool) -> Self {
        self.cfg.depth_metrics = on;
        self
    }
    /// Where to LISTEN for wake-ups (default [`Listen::Auto`]).
    pub fn listen(mut self, listen: Listen) -> Self {
        self.cfg.listen = listen;
        self
    }
    /// Whether this process takes part in the leader election and, when
    /// elected, runs the maintenance services (rescuer, scheduler, periodic
    /// jobs, archive partitions and retention). Default true.
    pub fn maintenance(mut self, on: bool) -> Self {
        self.maintenance_on = on;
        self
    }
    /// Registers a periodic job, enqueued by whichever process leads, once
    /// per run. A bad schedule fails [`WorkerBuilder::build`] with an error
    /// naming the field (`cron`, `timezone`, `interval`, `periodic`, `job`).
    ///
    /// # Example: every ten seconds
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Tick;
    /// # impl skiplock::Job for Tick { const KIND: &'static str = "tick"; }
    /// # async fn tick(_: Tick, _: skiplock::JobContext) -> Result<(), skiplock::JobError> { Ok(()) }
    /// # async fn run(client: skiplock::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use skiplock::{EnqueueOptions, PeriodicJob, Worker};
    /// let worker = Worker::builder(client)
    ///     .queue("default", 10)
    ///     .register(tick)
    ///     .periodic(PeriodicJob::cron("tick", "*/10 * * * * *").job(&Tick, EnqueueOptions::new()))
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn periodic(mut self, job: PeriodicJob) -> Self {
        self.maintenance.periodic.push(job);
        self
    }
    /// How long finished jobs stay in the archive (default
    /// [`Retention::default`]: completed 1 day, cancelled and discarded 7).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.maintenance.archive.retention = retention;
        self
    }
    /// The leader's lease (default
    /// [`LEADER_LEASE_DEFAULT`](crate::LEADER_LEASE_DEFAULT)).
    pub fn leader_lease(mut self, lease: Duration) -> Self {
        self.maintenance.lease = lease;
        self
    }
    /// UTC days of archive partitions created ahead (default
    /// [`ARCHIVE_DAYS_AHEAD_DEFAULT`](crate::ARCHIVE_DAYS_AHEAD_DEFAULT)).
    pub fn archive_days_ahead(mut self, days: u32) -> Self {
        self.maintenance.archive.days_ahead = days;
        self
    }
    /// How often the leader maintains the archive (default
    /// [`ARCHIVE_INTERVAL_DEFAULT`](crate::ARCHIVE_INTERVAL_DEFAULT)).
    pub fn archive_interval(mut self, every: Duration) -> Self {
        self.maintenance.archive.interval = every;
        self
    }

    /// Whether [`WorkerBuilder::build`] accepts what looks like a mistake,
    /// with a WARN line each, instead of refusing it (default false): a
    /// typed kind registered here whose [`Job::QUEUE`] this worker does not
    /// serve, a periodic job whose queue it does not serve or whose kind has
    /// no handler here. Turn it on when other workers serve those queues
    /// (the jobs would otherwise wait, unrun, for a worker that never
    /// comes).
    pub fn allow_unserved(mut self, allow: bool) -> Self {
        self.allow_unserved = allow;
        self
    }

    /// The name this worker leaves in `leased_by` (default
    /// `host-pid-random`).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.cfg.worker_id = id.into();
        self
    }

    /// Checks the settings and builds the worker.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for the first bad setting: no queue, a bad
    /// queue or kind name, a kind registered twice, a zero concurrency, a
    /// lease under 100ms, a LISTEN URL that does not parse, or a bad
    /// maintenance setting (see [`MaintenanceBuilder::build`](crate::MaintenanceBuilder::build)).
    /// Also, unless [`WorkerBuilder::allow_unserved`]: `queue` for a typed
    /// kind whose [`Job::QUEUE`] this worker does not serve, and `periodic`
    /// for a periodic job aimed at a queue it does not serve or at a kind it
    /// has no handler for. Nothing is checked again while the worker runs.
    pub fn build(mut self) -> Result<Worker> {
        if let Some(e) = std::mem::take(&mut self.errors).into_iter().next() {
            return Err(e);
        }
        if self.cfg.queues.is_empty() {
            return Err(Error::invalid("queue", "a worker needs at least one queue"));
        }
        if self.cfg.lease < Duration::from_millis(100) {
            return Err(Error::invalid("lease", "must be at least 100ms"));
        }
        self.cfg.lease_ms =
            i64::try_from(self.cfg.lease.as_millis()).map_err(|_| Error::invalid("lease", "is too long"))?;
        if let Listen::Url(url) = &self.cfg.listen
            && let Err(e) = crate::runtime::wakeups::listen_settings(url)
        {
            // The URL's or a TLS file's fault, named as `listen`'s.
            let why = match e {
                Error::InvalidInput { field, reason } => format!("{field} {reason}"),
                other => other.to_string(),
            };
            return Err(Error::invalid("listen", format!("the URL or a TLS file it names is wrong: {why}")));
        }
        validate::text("worker_id", &self.cfg.worker_id, 255)?;
        if matches!(self.cfg.listen, Listen::Auto) && self.client.statement_mode() == StatementMode::Unnamed {
            tracing::warn!("statement mode is Unnamed (PgBouncer): no LISTEN connection configured, polling only");
            self.cfg.listen = Listen::Disabled;
        }
        for (field, problem) in self.unserved() {
            if !self.allow_unserved {
                return Err(Error::invalid(
                    field,
                    format!("{problem} (or .allow_unserved(true) if another worker does)"),
                ));
            }
            tracing::warn!(field, "{problem}");
        }
        if !self.maintenance_on && !self.maintenance.periodic.is_empty() {
            tracing::warn!("periodic jobs registered on a worker with maintenance off: only the leader enqueues them");
        }
        let events = Events::new();
        // Checked whether or not this process takes part: a bad setting is
        // a bad setting.
        self.maintenance.id = Some(self.cfg.worker_id.clone());
        let services = Services::new(self.maintenance, self.client.db().clone(), events.clone())?;
        let maintenance = self.maintenance_on.then(|| Arc::new(services));
        Ok(Worker { client: self.client, cfg: Arc::new(self.cfg), events, maintenance })
    }
}

impl WorkerBuilder {
    /// What this worker's settings would leave unrun: typed kinds whose
    /// queue it does not serve, periodic jobs aimed at a queue it does not
    /// serve or at a kind it has no handler for. (field, problem) each.
    fn unserved(&self) -> Vec<(&'static str, String)> {
        let served = |q: &str| self.cfg.queues.iter().any(|(name, _)| name == q);
        let mut out = Vec::new();
        let mut kinds: Vec<(&String, &'static str)> =
            self.cfg.handlers.iter().filter_map(|(kind, h)| Some((kind, h.queue?))).collect();
        kinds.sort_unstable();
        for (kind, queue) in kinds {
            if !served(queue) {
                out.push((
                    "queue",
                    format!(
                        "kind {kind:?} is registered, but its queue {queue:?} (its Job::QUEUE) is not served by this \
                         worker: serve it with .queue({queue:?}, n)"
                    ),
                ));
            }
        }
        for periodic in &self.maintenance.periodic {
            let (name, Some(job)) = periodic.target() else { continue };
            if !served(job.queue()) {
                out.push((
                    "periodic",
                    format!(
                        "periodic job {name:?} enqueues into queue {:?}, which this worker does not serve: serve it \
                         with .queue({:?}, n)",
                        job.queue(),
                        job.queue()
                    ),
                ));
            }
            if !self.cfg.handlers.contains_key(job.kind()) && self.cfg.fallback.is_none() {
                out.push((
                    "periodic",
                    format!(
                        "periodic job {name:?} enqueues kind {:?}, which has no handler here: register one",
                        job.kind()
                    ),
                ));
            }
        }
        out
    }
}

/// A worker process's job runner: producers claim batches for each queue,
/// handlers run under leases, outcomes are written in batches.
pub struct Worker {
    client: Client,
    cfg: Arc<Config>,
    events: Events,
    maintenance: Option<Arc<Services>>,
}

impl Worker {
    /// A builder for a worker using `client`.
    pub fn builder(client: Client) -> WorkerBuilder {
        WorkerBuilder {
            maintenance: MaintenanceConfig::default(),
            maintenance_on: true,
            client,
            cfg: Config {
                worker_id: crate::host::default_worker_id(),
                queues: Vec::new(),
                handlers: HashMap::new(),
                fallback: None,
                backoff: Backoff::default(),
                lease: LEASE_DEFAULT,
                lease_ms: 0,
                poll_interval: POLL_INTERVAL_DEFAULT,
                poll_interval_max: POLL_INTERVAL_MAX_DEFAULT,
                claim_batch_max: CLAIM_BATCH_MAX_DEFAULT,
                complete_batch_max: COMPLETE_BATCH_MAX_DEFAULT,
                timeout: TIMEOUT_DEFAULT,
                shutdown_grace: SHUTDOWN_GRACE_DEFAULT,
                cancel_grace: CANCEL_GRACE_DEFAULT,
                flush_deadline: FLUSH_DEADLINE_DEFAULT,
                keep_completed: true,
                depth_metrics: false,
                listen: Listen::Auto,
            },
            errors: Vec::new(),
            allow_unserved: false,
        }
    }

    /// Events from now on (see [`Event`]); subscribe before `start` to miss
    /// none. A slow receiver loses the oldest events (`RecvError::Lagged`).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// The name this worker leaves in `leased_by`.
    pub fn id(&self) -> &str {
        &self.cfg.worker_id
    }

    /// Starts the worker's tasks on the current Tokio runtime.
    pub fn start(self) -> WorkerHandle {
        runtime::start(self.client.db().clone(), self.cfg, self.events, self.maintenance)
    }

    /// Runs until `shutdown` resolves, then shuts down gracefully.
    ///
    /// # Errors
    ///
    /// None yet; reserved for start-up checks.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let handle = self.start();
        shutdown.await;
        handle.shutdown().await;
        Ok(())
    }

    /// Runs until ctrl-c or SIGTERM, then shuts down gracefully; a second
    /// signal stops at once (running jobs are released; their leases make
    /// that safe).
    ///
    /// # Errors
    ///
    /// When the signal handlers cannot be installed.
    pub async fn run_until_signal(self) -> Result<()> {
        let handle = self.start();
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(Error::Signal)?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: finishing running jobs (signal again to stop at once)");
        let graceful = handle.shutdown();
        tokio::pin!(graceful);
        tokio::select! {
            _ = &mut graceful => return Ok(()),
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("second signal: stopping at once");
        handle.stop_now();
        graceful.await;
        Ok(())
    }
}
