//! Maintenance: the services one process of a fleet runs for all of them,
//! as the elected leader. Each is a struct with its own config and one
//! database handle, driven by `crate::service` (the loop, the stop token,
//! leadership, panic restart):
//!
//! - `leader.rs`: [`Leadership`](leader::Leadership) (this process's part in
//!   the election) and the `Elector` service that keeps the lease.
//! - `rescuer.rs`: expired leases back to the queue (or discarded).
//! - `scheduler.rs`: due scheduled and retryable jobs made available.
//! - `periodic.rs`: periodic jobs, each run enqueued once.
//! - `archive.rs`: the archive's dated partitions ahead of time, retention.
//! - `unique_keys.rs`: keys kept past their job's finish, pruned.
//! - `marks.rs`: the low-water marks' log, pruned.
//! - `vacuum.rs`: the hot table vacuumed and analyzed between autovacuum's
//!   visits.
//! - `depth.rs`: the queue depth counted for the dashboard.
//! - `stats.rs`: the workers' per-minute statistics merged, rolled up per
//!   hour and pruned, for the dashboard.
//!
//! Every process with maintenance on runs these services, but a pass only
//! runs while this process leads: first by its own view (the driver waits
//! while it does not), then, as the first statement of the pass's
//! transaction, the database's (`db/leader/guard.sql` locks the leader row
//! FOR KEY SHARE if this process holds an unexpired lease). A takeover must
//! replace that row, so it waits for a pass in flight to commit: the passes
//! of two processes never overlap, even while a deposed leader still
//! believes it leads. The leader's renewal only updates the row and waits
//! for no pass. Every pass is bounded in time (statement, lock and
//! idle-in-transaction timeouts derived from the leader lease), so a pass
//! stuck on a lock or on a vanished host ends by itself and a takeover gets
//! through. The services run at once when leadership is won.

mod archive;
mod depth;
mod guard;
pub(crate) mod leader;
mod marks;
mod periodic;
mod rescuer;
mod scheduler;
mod stats;
mod unique_keys;
mod vacuum;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use archive::{
    ARCHIVE_AT_WINDOW, ARCHIVE_DAYS_AHEAD_DEFAULT, ARCHIVE_DAYS_AHEAD_MAX, ARCHIVE_INTERVAL_DEFAULT,
    ARCHIVE_LOCK_TIMEOUT, ArchiveReport, DEFAULT_PARTITION_PRUNE_BATCH, RETENTION_CANCELLED_DEFAULT,
    RETENTION_COMPLETED_DEFAULT, RETENTION_DISCARDED_DEFAULT, RETENTION_MAX, Retention,
};
pub use depth::STATS_DEPTH_INTERVAL;
pub use leader::{LEADER_LEASE_DEFAULT, LEADER_LEASE_MAX, LEADER_LEASE_MIN};
pub use periodic::{
    Missed, PERIODIC_BACKFILL_MAX, PERIODIC_CHECK_MAX, PERIODIC_GRACE_DEFAULT, PERIODIC_INTERVAL_MIN, PeriodicJob,
    PeriodicReport, PeriodicRun,
};
pub use rescuer::RESCUE_INTERVAL_DEFAULT;
pub use scheduler::SCHEDULER_INTERVAL_DEFAULT;
pub use stats::{STATS_HOUR_RETENTION, STATS_MERGE_AFTER, STATS_MERGE_INTERVAL, STATS_MINUTE_RETENTION, StatsReport};
pub use unique_keys::UNIQUE_PRUNE_BATCH;
pub use vacuum::{ANALYZE_CHANGED_MIN, VACUUM_CHECK_INTERVAL, VACUUM_DEAD_MIN};

use crate::client::{Client, PromoteReport, RescueReport};
use crate::db::Db;
use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::service::{self, Gate, Service};
use leader::{Elector, Leadership};

/// Every maintenance setting: each service's own config, and the election's.
#[derive(Debug, Clone)]
pub(crate) struct MaintenanceConfig {
    /// The name this process is elected under (default: a worker's id, or
    /// `host-pid-random`).
    pub id: Option<String>,
    /// The leader's lease. Default [`LEADER_LEASE_DEFAULT`];
    /// [`LEADER_LEASE_MIN`] to [`LEADER_LEASE_MAX`].
    pub lease: Duration,
    pub rescuer: rescuer::RescuerConfig,
    pub scheduler: scheduler::SchedulerConfig,
    pub archive: archive::ArchiveConfig,
    /// The periodic jobs, as registered (checked by `build`).
    pub periodic: Vec<PeriodicJob>,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            id: None,
            lease: LEADER_LEASE_DEFAULT,
            rescuer: Default::default(),
            scheduler: Default::default(),
            archive: Default::default(),
            periodic: Vec::new(),
        }
    }
}

/// The built services of one process.
pub(crate) struct Services {
    db: Db,
    leadership: Arc<Leadership>,
    rescuer: Arc<rescuer::Rescuer>,
    scheduler: Arc<scheduler::Scheduler>,
    periodic: Arc<periodic::PeriodicJobs>,
    archive: Arc<archive::Archive>,
    unique_keys: Arc<unique_keys::UniqueKeys>,
    marks: Arc<marks::MarksPrune>,
    vacuum: Arc<vacuum::Vacuum>,
    depth: Arc<depth::QueueDepth>,
    stats: Arc<stats::Stats>,
}

impl Services {
    /// Checks `cfg` and builds every service on `db`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for the first bad setting, naming it.
    pub fn new(cfg: MaintenanceConfig, db: Db, events: Events) -> Result<Services> {
        let mut periodic = Vec::new();
        for job in cfg.periodic {
            let p = job.compile()?;
            if periodic.iter().any(|q: &periodic::Periodic| q.name == p.name) {
                return Err(Error::invalid("periodic", format!("{:?} is registered twice", p.name)));
            }
            periodic.push(p);
        }
        let id = cfg.id.unwrap_or_else(crate::host::default_worker_id);
        let leadership = Arc::new(Leadership::new(id, cfg.lease, events)?);
        let l = || leadership.clone();
        let interval = cfg.archive.interval;
        Ok(Services {
            rescuer: Arc::new(rescuer::Rescuer::new(cfg.rescuer, db.clone(), l())?),
            scheduler: Arc::new(scheduler::Scheduler::new(cfg.scheduler, db.clone(), l())?),
            periodic: Arc::new(periodic::PeriodicJobs::new(periodic, db.clone(), l())),
            archive: Arc::new(archive::Archive::new(cfg.archive, db.clone(), l())?),
            unique_keys: Arc::new(unique_keys::UniqueKeys::new(interval, db.clone(), l())),
            marks: Arc::new(marks::MarksPrune::new(interval, db.clone(), l())),
            vacuum: Arc::new(vacuum::Vacuum::new(db.clone(), l())),
            depth: Arc::new(depth::QueueDepth::new(db.clone(), l())),
            stats: Arc::new(stats::Stats::new(db.clone(), l())),
            leadership,
            db,
        })
    }

    /// Starts the elector and every service, until `stop`. `registered`:
    /// a worker's registry entry (only a process holding its worker id
    /// stands for election).
    pub fn spawn(&self, registered: Option<watch::Receiver<bool>>, stop: &CancellationToken) -> Vec<JoinHandle<()>> {
        let elector = Elector { leadership: self.leadership.clone(), db: self.db.clone(), registered };
        let leading = || Gate::Leader(self.leadership.watch());
        let mut all = vec![
            service::spawn(Arc::new(elector), Gate::Always, stop.clone()),
            service::spawn(self.rescuer.clone(), leading(), stop.clone()),
            service::spawn(self.scheduler.clone(), leading(), stop.clone()),
            service::spawn(self.archive.clone(), leading(), stop.clone()),
            service::spawn(self.unique_keys.clone(), leading(), stop.clone()),
            service::spawn(self.marks.clone(), leading(), stop.clone()),
            service::spawn(self.vacuum.clone(), leading(), stop.clone()),
            service::spawn(self.depth.clone(), leading(), stop.clone()),
            service::spawn(self.stats.clone(), leading(), stop.clone()),
        ];
        if !self.periodic.is_empty() {
            all.push(service::spawn(self.periodic.clone(), leading(), stop.clone()));
        }
        all
    }
}

/// The maintenance services of one process, and its part in the leader
/// election. A [`Worker`](crate::Worker) builds and runs one (unless
/// [`WorkerBuilder::maintenance`](crate::WorkerBuilder::maintenance) is
/// off); build one yourself to run a pass by hand, from a test or a
/// maintenance script.
///
/// # Example: one pass, if elected
///
/// ```no_run
/// # async fn run(client: skiplock::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use skiplock::Maintenance;
/// let m = Maintenance::builder(client).id("ops-script").build()?;
/// if m.elect().await? {
///     if let Some(report) = m.run_once().await? {
///         println!("rescued {} jobs", report.rescued.rescued.len());
///     }
///     m.resign().await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Maintenance {
    inner: Arc<Services>,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance").field("id", &self.inner.leadership.id).finish_non_exhaustive()
    }
}

/// Builds a [`Maintenance`].
#[derive(Debug)]
pub struct MaintenanceBuilder {
    client: Client,
    cfg: MaintenanceConfig,
    events: Events,
}

impl MaintenanceBuilder {
    /// The name this process takes part in the election under (default:
    /// `host-pid-random`; a worker uses its worker id). Unique per process.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.cfg.id = Some(id.into());
        self
    }

    /// How long the leader's lease lasts unrenewed (default
    /// [`LEADER_LEASE_DEFAULT`], from [`LEADER_LEASE_MIN`] to
    /// [`LEADER_LEASE_MAX`]). It renews every third of it, and a dead leader
    /// is replaced within about a third of it after the lease ran out.
    pub fn leader_lease(mut self, lease: Duration) -> Self {
        self.cfg.lease = lease;
        self
    }

    /// Adds a periodic job. A bad schedule is rejected by `build`, with an
    /// error naming the field: `cron`, `timezone`, `interval`, `periodic`
    /// (the name) or `job`.
    pub fn periodic(mut self, job: PeriodicJob) -> Self {
        self.cfg.periodic.push(job);
        self
    }

    /// How long finished jobs are kept (default [`Retention::default`]).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.cfg.archive.retention = retention;
        self
    }

    /// UTC days of archive partitions created beyond today (default
    /// [`ARCHIVE_DAYS_AHEAD_DEFAULT`], at most [`ARCHIVE_DAYS_AHEAD_MAX`]).
    pub fn archive_days_ahead(mut self, days: u32) -> Self {
        self.cfg.archive.days_ahead = days;
        self
    }

    /// How often the leader creates partitions and applies retention
    /// (default [`ARCHIVE_INTERVAL_DEFAULT`], at least a second).
    pub fn archive_interval(mut self, every: Duration) -> Self {
        self.cfg.archive.interval = every;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for the first bad setting: a periodic job's
    /// schedule or job, a name registered twice, a lease under
    /// [`LEADER_LEASE_MIN`] or over [`LEADER_LEASE_MAX`], a retention over
    /// [`RETENTION_MAX`], a bad id.
    pub fn build(self) -> Result<Maintenance> {
        let services = Services::new(self.cfg, self.client.db().clone(), self.events)?;
        Ok(Maintenance { inner: Arc::new(services) })
    }
}

/// What [`Maintenance::run_once`] did: rescue, promotion and periodic jobs
/// in one leader-guarded transaction, the archive in transactions of its
/// own after it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaintenanceReport {
    /// When the database confirmed this process's leadership (its clock).
    pub started_at: DateTime<Utc>,
    /// When the first transaction's work was done, just before it committed
    /// (database clock). No other process's pass falls between `started_at`
    /// and this.
    pub finished_at: DateTime<Utc>,
    /// The rescuer's batch.
    pub rescued: RescueReport,
    /// The scheduler's batch.
    pub promoted: PromoteReport,
    /// The periodic jobs' runs.
    pub periodic: PeriodicReport,
    /// Partitions and retention.
    pub archive: ArchiveReport,
}

impl Maintenance {
    /// Settings for the maintenance of `client`'s schema.
    pub fn builder(client: Client) -> MaintenanceBuilder {
        MaintenanceBuilder { client, cfg: MaintenanceConfig::default(), events: Events::new() }
    }

    /// The id this process is elected under.
    pub fn id(&self) -> &str {
        &self.inner.leadership.id
    }

    /// Events from now on: [`Event::LeaderElected`], [`Event::LeaderLost`],
    /// [`Event::PeriodicEnqueued`], [`Event::ArchiveMaintained`].
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.leadership.events.subscribe()
    }

    /// Whether this process believes it leads: elected, and its lease not
    /// run out by its own clock. Each pass checks again in the database.
    pub fn is_leader(&self) -> bool {
        self.inner.leadership.is_leader()
    }

    /// One election round (what the elector does every third of the lease):
    /// renews the lease if held, takes the leader row if its lease expired.
    /// Returns whether this process leads now.
    ///
    /// # Errors
    ///
    /// Database errors; leadership is kept locally until its lease runs out.
    pub async fn elect(&self) -> Result<bool> {
        self.inner.leadership.elect(&self.inner.db).await
    }

    /// Gives up leadership (deletes the leader row if held), so another
    /// process is elected at its next round. Returns whether it was held.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn resign(&self) -> Result<bool> {
        self.inner.leadership.resign(&self.inner.db).await
    }

    /// Every service once: a rescue batch, a scheduler batch and the
    /// periodic jobs in one transaction guarded by the leader row (the
    /// report's `started_at` to `finished_at`), then partitions and
    /// retention in transactions of their own (as the archive service
    /// does). `None` when this process does not lead.
    ///
    /// # Errors
    ///
    /// Database errors (nothing of the failed transaction is kept then).
    pub async fn run_once(&self) -> Result<Option<MaintenanceReport>> {
        let s = &self.inner;
        let jobs = s.periodic.jobs();
        let out = guard::guarded!(&s.leadership, &s.db, |on| {
            let rescued = rescuer::batch(on).await?;
            let promoted = scheduler::batch(on).await?;
            let periodic = periodic::pass(&s.db, on, jobs).await?;
            (rescued, promoted, periodic)
        })?;
        let Some(((rescued, promoted, periodic), started_at, finished_at)) = out else {
            return Ok(None);
        };
        s.periodic.announce(&periodic);
        let archive = self.archive_once(None).await?.unwrap_or_default();
        Ok(Some(MaintenanceReport { started_at, finished_at, rescued, promoted, periodic, archive }))
    }

    /// The periodic service's pass: enqueues the runs that fell due. `None`
    /// when this process does not lead.
    ///
    /// # Errors
    ///
    /// Database errors (no run is enqueued then).
    pub async fn periodic_once(&self) -> Result<Option<PeriodicReport>> {
        self.inner.periodic.run_once().await
    }

    /// The vacuum service's pass: vacuums the hot table if its dead tuples
    /// passed the threshold ([`VACUUM_DEAD_MIN`], and a fifth of the live
    /// ones), or analyzes it if at least [`ANALYZE_CHANGED_MIN`] rows changed
    /// since its last analyze and no fewer than the planner believes it
    /// holds (a burst into a table analysed empty). `Some(true)` if it did
    /// either; `None` when this process does not lead.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn vacuum_once(&self) -> Result<Option<bool>> {
        self.inner.vacuum.run_once().await
    }

    /// The dashboard's statistics services' passes: counts the queue depth,
    /// merges the workers' statistics rows of minutes before `merge_before`
    /// (`None`: those that ended [`STATS_MERGE_AFTER`] ago; a test may pass
    /// a later time once its workers stopped), and prunes by retention.
    /// `None` when this process does not lead.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn stats_once(&self, merge_before: Option<DateTime<Utc>>) -> Result<Option<StatsReport>> {
        let Some(depth) = self.inner.depth.run_once().await? else { return Ok(None) };
        let Some(merged) = self.inner.stats.pass(merge_before).await? else { return Ok(None) };
        Ok(Some(StatsReport {
            depth_pairs: depth.pairs,
            depth_took: depth.took,
            merged: merged.merged,
            pruned: merged.pruned,
        }))
    }

    /// The archive service's pass as if the time were `at` (`None`: the
    /// database's now; for retention, never later than it): creates the
    /// partitions of `at`'s UTC day and the days ahead, drops the tables
    /// past retention, prunes the default partition, and a batch of stale
    /// unique keys. `None` when this process does not lead.
    ///
    /// # Errors
    ///
    /// Database errors, such as a lock not granted within
    /// [`ARCHIVE_LOCK_TIMEOUT`] (the step that failed changed nothing), or
    /// an `at` further than [`ARCHIVE_AT_WINDOW`] from the database's clock.
    pub async fn archive_once(&self, at: Option<DateTime<Utc>>) -> Result<Option<ArchiveReport>> {
        let Some(mut report) = self.inner.archive.pass(at).await? else {
            return Ok(None);
        };
        report.unique_keys_pruned = self.inner.unique_keys.run_once().await?.unwrap_or_default();
        Ok(Some(report))
    }
}
