//! Maintenance: the services one process of a fleet runs for all of them,
//! as the elected leader.
//!
//! - `leader`: the election (a leader row with an expiring lease).
//! - `rescuer`: expired leases back to the queue (or discarded).
//! - `scheduler`: due scheduled and retryable jobs made available.
//! - `cron`: periodic jobs, each run enqueued once.
//! - `partitions` and `pruner`: the archive's dated partitions ahead of
//!   time; retention by dropping whole tables; stale unique keys.
//!
//! Every worker with maintenance on runs these loops, but a pass only runs
//! while this process leads. Leadership is checked at each pass rather than
//! by starting and stopping the services: first this process's own view (so
//! followers stay idle without a query), then, as the first statement of the
//! pass's transaction, the database's (`db/leader/guard.sql` locks the leader
//! row FOR KEY SHARE if this process holds an unexpired lease). A takeover
//! must replace that row, so it waits for a pass in flight to commit: the
//! passes of two processes never overlap, even while a deposed leader still
//! believes it leads. The leader's renewal only updates the row and waits
//! for no pass. Every pass is bounded in time (statement, lock and
//! idle-in-transaction timeouts derived from the leader lease), so a pass
//! stuck on a lock or on a vanished host ends by itself and a takeover gets
//! through. The loops wake at once when leadership is won.

/// Runs `$body` (which uses `$tx: &dyn Exec`) in a transaction opened by
/// the leader guard: only if this process leads by its own view and, at this
/// moment, by the database's (the leader row is then locked FOR KEY SHARE
/// until commit, so a takeover waits for this pass; the leader's own
/// renewal does not). The transaction is bounded: statement, lock and
/// idle-in-transaction timeouts on the server, and a timeout on the whole
/// pass here, after which the connection is discarded. Evaluates to
/// `Result<Option<(body's value, confirmed at, done at)>>`, `None` when this
/// process does not lead; the database saying no also ends its leadership
/// locally. (A macro, not a function taking an async closure: such a
/// closure's future cannot be proven `Send` for every borrow of the
/// transaction, which `tokio::spawn` needs.)
macro_rules! guarded {
    ($m:expr, |$tx:ident| $body:expr) => {{
        let m: &Inner = $m;
        async {
            if !m.leader.is_leader() {
                return Ok(None);
            }
            let pg = |e: tokio_postgres::Error| m.client.pg(e.into());
            let mut conn = crate::db::Discardable::new(m.client.conn().await?);
            let pass = async {
                let tx = conn.transaction().await.map_err(pg)?;
                let s = m.client.stmts();
                let Some(started) =
                    crate::db::leader::guard(&tx, s, &m.id, &m.limits.pass).await.map_err(|e| m.client.pg(e))?
                else {
                    drop(tx);
                    m.lost("the database says another process leads");
                    return Ok(None);
                };
                let $tx: &dyn crate::db::Exec = &tx;
                let out = $body;
                let finished = crate::db::leader::clock(&tx, s).await.map_err(|e| m.client.pg(e))?;
                tx.commit().await.map_err(pg)?;
                Ok::<_, Error>(Some((out, started, finished)))
            };
            // The server ends a stuck pass by itself (guard.sql's limits);
            // this bounds the client's wait too, if the server cannot be
            // heard from at all.
            match tokio::time::timeout(m.limits.client, pass).await {
                Ok(done) => {
                    if done.as_ref().err().is_none_or(|e: &Error| e.sqlstate().is_some()) {
                        conn.keep();
                    }
                    done
                }
                Err(_) => Err(Error::Timeout { after: m.limits.client }),
            }
        }
        .await
    }};
}

mod cron;
mod leader;
mod partitions;
mod pruner;
mod rescuer;
mod scheduler;
mod stats;
mod vacuum;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use cron::{
    Missed, PERIODIC_BACKFILL_MAX, PERIODIC_CHECK_MAX, PERIODIC_GRACE_DEFAULT, PERIODIC_INTERVAL_MIN, PeriodicInfo,
    PeriodicJob, PeriodicReport, PeriodicRun,
};
pub use leader::{LEADER_LEASE_DEFAULT, LEADER_LEASE_MAX, LEADER_LEASE_MIN, LeaderInfo};
pub use partitions::{
    ARCHIVE_AT_WINDOW, ARCHIVE_DAYS_AHEAD_DEFAULT, ARCHIVE_DAYS_AHEAD_MAX, ARCHIVE_INTERVAL_DEFAULT,
    ARCHIVE_LOCK_TIMEOUT,
};
pub use pruner::{
    ArchiveReport, DEFAULT_PARTITION_PRUNE_BATCH, RETENTION_CANCELLED_DEFAULT, RETENTION_COMPLETED_DEFAULT,
    RETENTION_DISCARDED_DEFAULT, RETENTION_MAX, Retention, UNIQUE_PRUNE_BATCH,
};
pub use stats::{
    STATS_DEPTH_INTERVAL, STATS_HOUR_RETENTION, STATS_MERGE_AFTER, STATS_MERGE_INTERVAL, STATS_MINUTE_RETENTION,
    StatsReport,
};
pub use vacuum::{ANALYZE_CHANGED_MIN, VACUUM_CHECK_INTERVAL, VACUUM_DEAD_MIN};

use crate::client::{Client, PromoteReport, RescueReport};
use crate::error::{Error, Result};
use crate::runtime::{Event, Shared, spawn_service};
use crate::validate;

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
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Maintenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maintenance").field("id", &self.inner.id).finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    client: Client,
    id: String,
    lease: Duration,
    /// Time limits derived from the lease.
    limits: Limits,
    leader: leader::State,
    periodic: Vec<cron::Periodic>,
    retention: Retention,
    days_ahead: u32,
    archive_interval: Duration,
    /// Where the unique-key pruner goes on from.
    unique_cursor: Mutex<String>,
    events: broadcast::Sender<Event>,
}

/// Builds a [`Maintenance`].
#[derive(Debug)]
pub struct MaintenanceBuilder {
    client: Client,
    id: Option<String>,
    lease: Duration,
    periodic: Vec<cron::Periodic>,
    retention: Retention,
    days_ahead: u32,
    archive_interval: Duration,
    events: Option<broadcast::Sender<Event>>,
    errors: Vec<Error>,
}

impl MaintenanceBuilder {
    /// The name this process takes part in the election under (default:
    /// `host-pid-random`; a worker uses its worker id). Unique per process.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// How long the leader's lease lasts unrenewed (default
    /// [`LEADER_LEASE_DEFAULT`], from [`LEADER_LEASE_MIN`] to
    /// [`LEADER_LEASE_MAX`]). It renews
    /// every third of it, and a dead leader is replaced within about a third
    /// of it after the lease ran out.
    pub fn leader_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Adds a periodic job. A bad schedule is rejected here (reported by
    /// `build`), with an error naming the field: `cron`, `timezone`,
    /// `interval`, `periodic` (the name) or `job`.
    pub fn periodic(mut self, job: PeriodicJob) -> Self {
        match job.compile() {
            Ok(p) if self.periodic.iter().any(|q| q.name == p.name) => {
                self.errors.push(Error::invalid("periodic", format!("{:?} is registered twice", p.name)));
            }
            Ok(p) => self.periodic.push(p),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// How long finished jobs are kept (default [`Retention::default`]).
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// UTC days of archive partitions created beyond today (default
    /// [`ARCHIVE_DAYS_AHEAD_DEFAULT`], at most [`ARCHIVE_DAYS_AHEAD_MAX`]).
    pub fn archive_days_ahead(mut self, days: u32) -> Self {
        self.days_ahead = days;
        self
    }

    /// How often the leader creates partitions and applies retention
    /// (default [`ARCHIVE_INTERVAL_DEFAULT`], at least a second).
    pub fn archive_interval(mut self, every: Duration) -> Self {
        self.archive_interval = every;
        self
    }

    /// Whether any periodic job was registered.
    pub(crate) fn has_periodic(&self) -> bool {
        !self.periodic.is_empty()
    }

    pub(crate) fn events(mut self, events: broadcast::Sender<Event>) -> Self {
        self.events = Some(events);
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
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        if self.lease < LEADER_LEASE_MIN {
            return Err(Error::invalid("leader_lease", format!("must be at least {LEADER_LEASE_MIN:?}")));
        }
        if self.lease > LEADER_LEASE_MAX {
            return Err(Error::invalid("leader_lease", format!("must be at most {LEADER_LEASE_MAX:?}")));
        }
        if self.days_ahead > ARCHIVE_DAYS_AHEAD_MAX {
            let e = format!("{} is more than {ARCHIVE_DAYS_AHEAD_MAX}", self.days_ahead);
            return Err(Error::invalid("archive_days_ahead", e));
        }
        if self.archive_interval < Duration::from_secs(1) {
            return Err(Error::invalid("archive_interval", "must be at least 1s"));
        }
        self.retention.check()?;
        let id = self.id.unwrap_or_else(crate::worker::default_worker_id);
        validate::text("id", &id, 255)?;
        Ok(Maintenance {
            inner: Arc::new(Inner {
                client: self.client,
                id,
                lease: self.lease,
                limits: Limits::of(self.lease),
                leader: leader::State::new(),
                periodic: self.periodic,
                retention: self.retention,
                days_ahead: self.days_ahead,
                archive_interval: self.archive_interval,
                unique_cursor: Mutex::new(String::new()),
                events: self.events.unwrap_or_else(|| broadcast::channel(1024).0),
            }),
        })
    }
}

/// How long the maintenance's statements may take, derived from the leader
/// lease (`L`, 10 s by default): a pass's statements `L`, its lock waits
/// `L/4`, its idle moments `L/2` (a pass is idle only for a client round
/// trip; a vanished leader's session ends after that), the whole pass `3L`
/// on the client's side; an election's lock wait `L/4` (its client gives
/// up at `L/2`). A takeover therefore waits at most about `L` for a stuck
/// pass.
pub(crate) struct Limits {
    pub pass: crate::db::leader::PassLimits,
    pub client: Duration,
    pub elect_lock: String,
}

impl Limits {
    fn of(lease: Duration) -> Limits {
        let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
        Limits {
            pass: crate::db::leader::PassLimits {
                statement: ms(lease.max(Duration::from_secs(1))),
                lock: ms(lease / 4),
                idle: ms((lease / 2).max(Duration::from_secs(1))),
            },
            client: lease * 3,
            elect_lock: ms(lease / 4),
        }
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
        MaintenanceBuilder {
            client,
            id: None,
            lease: LEADER_LEASE_DEFAULT,
            periodic: Vec::new(),
            retention: Retention::default(),
            days_ahead: ARCHIVE_DAYS_AHEAD_DEFAULT,
            archive_interval: ARCHIVE_INTERVAL_DEFAULT,
            events: None,
            errors: Vec::new(),
        }
    }

    /// The id this process is elected under.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Events from now on: [`Event::LeaderElected`], [`Event::LeaderLost`],
    /// [`Event::PeriodicEnqueued`], [`Event::ArchiveMaintained`].
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Whether this process believes it leads: elected, and its lease not
    /// run out by its own clock. Each pass checks again in the database.
    pub fn is_leader(&self) -> bool {
        self.inner.leader.is_leader()
    }

    /// One election round (what the elector does every third of the lease):
    /// renews the lease if held, takes the leader row if its lease expired.
    /// Returns whether this process leads now.
    ///
    /// # Errors
    ///
    /// Database errors; leadership is kept locally until its lease runs out.
    pub async fn elect(&self) -> Result<bool> {
        self.inner.elect().await
    }

    /// Gives up leadership (deletes the leader row if held), so another
    /// process is elected at its next round. Returns whether it was held.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn resign(&self) -> Result<bool> {
        self.inner.resign().await
    }

    /// Every service once: a rescue batch, a scheduler batch and the
    /// periodic jobs in one transaction guarded by the leader row (the
    /// report's `started_at` to `finished_at`), then partitions and
    /// retention in transactions of their own (as the archive service
    /// does). `None` when this process does not lead.
    ///
    /// # Errors
    ///
    /// Database errors (nothing of the pass is kept then).
    pub async fn run_once(&self) -> Result<Option<MaintenanceReport>> {
        let m = &self.inner;
        let out = guarded!(m, |tx| {
            let rescued = rescuer::pass(m, tx).await?;
            let promoted = scheduler::pass(m, tx).await?;
            let periodic = cron::pass(m, tx).await?;
            (rescued, promoted, periodic)
        })?;
        let Some(((rescued, promoted, periodic), started_at, finished_at)) = out else {
            return Ok(None);
        };
        m.announce(&periodic, &ArchiveReport::default());
        // The archive's DDL in transactions of its own (see archive_pass).
        let archive = m.archive_pass(None).await?.unwrap_or_default();
        Ok(Some(MaintenanceReport { started_at, finished_at, rescued, promoted, periodic, archive }))
    }

    /// The periodic service's pass: enqueues the runs that fell due. `None`
    /// when this process does not lead.
    ///
    /// # Errors
    ///
    /// Database errors (no run is enqueued then).
    pub async fn periodic_once(&self) -> Result<Option<PeriodicReport>> {
        self.inner.periodic_pass().await
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
        if !self.inner.leader.is_leader() {
            return Ok(None);
        }
        vacuum::pass(&self.inner).await.map(Some)
    }

    /// The archive service's pass as if the time were `at` (`None`: the
    /// database's now): creates the partitions of `at`'s UTC day and the
    /// days ahead, drops the tables past retention, prunes the default
    /// partition and stale unique keys. `None` when this process does not
    /// lead.
    ///
    /// `at` must lie within [`ARCHIVE_AT_WINDOW`] of the database's clock,
    /// and not after it: retention is never applied ahead of time.
    ///
    /// # Errors
    ///
    /// Database errors, such as a lock not granted within
    /// [`ARCHIVE_LOCK_TIMEOUT`], or SQLSTATE 22023 for an `at` outside the
    /// window (nothing is changed then).
    pub async fn archive_once(&self, at: Option<DateTime<Utc>>) -> Result<Option<ArchiveReport>> {
        self.inner.archive_pass(at).await
    }
}

impl Inner {
    fn emit(&self, ev: Event) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(ev);
        }
    }

    fn announce(&self, periodic: &PeriodicReport, archive: &ArchiveReport) {
        for run in &periodic.enqueued {
            self.emit(Event::PeriodicEnqueued { name: run.name.clone(), run_at: run.run_at, id: run.id });
        }
        if !archive.created.is_empty() || !archive.dropped.is_empty() {
            tracing::info!(created = ?archive.created, dropped = ?archive.dropped, "archive partitions changed");
            self.emit(Event::ArchiveMaintained { created: archive.created.clone(), dropped: archive.dropped.clone() });
        }
    }

    /// Rescue batches until fewer than a batch were found.
    async fn rescue_pass(&self) -> Result<Option<RescueReport>> {
        let mut all = RescueReport::default();
        loop {
            let Some((r, _, _)) = guarded!(self, |tx| rescuer::pass(self, tx).await?)? else {
                return Ok(None);
            };
            let n = r.rescued.len();
            all.rescued.extend(r.rescued);
            if n < rescuer::RESCUE_BATCH as usize {
                return Ok(Some(all));
            }
        }
    }

    async fn promote_pass(&self) -> Result<Option<PromoteReport>> {
        Ok(guarded!(self, |tx| scheduler::pass(self, tx).await?)?.map(|(r, _, _)| r))
    }

    async fn periodic_pass(&self) -> Result<Option<PeriodicReport>> {
        let out = guarded!(self, |tx| cron::pass(self, tx).await?)?.map(|(r, _, _)| r);
        if let Some(r) = &out {
            self.announce(r, &ArchiveReport::default());
        }
        Ok(out)
    }

    /// The archive's partitions ahead, retention, and the unique-key prune:
    /// each partition made and each table dropped in a leader-guarded
    /// transaction of its own, then the default partition's and the unique
    /// keys' prunes in one more each, so no lock the workers need is held
    /// for longer than one statement (review #8).
    async fn archive_pass(&self, at: Option<DateTime<Utc>>) -> Result<Option<ArchiveReport>> {
        let mut report = ArchiveReport::default();
        // At most a partition per day ahead (and today): bounded even if
        // the database kept answering with one.
        for _ in 0..=self.days_ahead {
            match guarded!(self, |tx| partitions::create_one(self, tx, at).await?)? {
                None => return Ok(None),
                Some((Some(made), _, _)) => report.created.push(made),
                Some((None, _, _)) => break,
            }
        }
        loop {
            match guarded!(self, |tx| partitions::expire_one(self, tx, at).await?)? {
                None => return Ok(None),
                Some((Some(dropped), _, _)) => report.dropped.push(dropped),
                Some((None, _, _)) => break,
            }
        }
        let Some((pruned, _, _)) = guarded!(self, |tx| pruner::prune_default(self, tx, at).await?)? else {
            return Ok(None);
        };
        report.default_pruned = pruned;
        let Some((keys, _, _)) = guarded!(self, |tx| pruner::prune_unique(self, tx).await?)? else {
            return Ok(None);
        };
        report.unique_keys_pruned = keys;
        self.announce(&PeriodicReport::default(), &report);
        Ok(Some(report))
    }
}

/// Starts the elector and every maintenance service of a worker.
pub(crate) fn spawn(sh: Arc<Shared>) -> Vec<JoinHandle<()>> {
    let m = sh.cfg.services.clone().expect("a worker with maintenance on builds its services").inner;
    macro_rules! service {
        ($name:literal, $run:path) => {{
            let (s, m) = (sh.clone(), m.clone());
            spawn_service(&sh, $name, move || $run(s.clone(), m.clone()))
        }};
    }
    vec![
        service!("leader", leader::run),
        service!("rescuer", rescuer::run),
        service!("scheduler", scheduler::run),
        service!("cron", cron::run),
        service!("partitions", partitions::run),
        service!("vacuum", vacuum::run),
        service!("stats", stats::run),
    ]
}
