//! [`Client::health`](crate::Client::health): the figures an operator checks before trusting the
//! queue, each with a finding in words when it needs action. The CLI's
//! `skiplock health` prints them; everything here is read from the server's
//! own views or index-backed counts, cheap enough to run every few seconds.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::admin::LeaderInfo;
use super::facade::Client;
use crate::db;
use crate::error::Result;

/// How old the oldest xmin holder may be before [`Client::health`] warns: 5
/// minutes.
pub const HEALTH_XMIN_AGE_DEFAULT: Duration = Duration::from_secs(300);
/// How many dead tuples the hot table may hold (when they also outnumber
/// the live ones) before [`Client::health`] warns: 100,000.
pub const HEALTH_DEAD_TUPLES_DEFAULT: i64 = 100_000;
/// How full the NOTIFY queue may be before [`Client::health`] warns: half.
pub const HEALTH_NOTIFY_USAGE_DEFAULT: f64 = 0.5;
/// How long past its lease a running job may be before [`Client::health`]
/// counts it as stuck (the rescuer takes such jobs back within a few
/// seconds): 1 minute.
pub const HEALTH_STUCK_GRACE_DEFAULT: Duration = Duration::from_secs(60);

/// When [`Client::health`] warns.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct HealthLimits {
    /// The oldest snapshot, slot or prepared transaction may be this old
    /// (default [`HEALTH_XMIN_AGE_DEFAULT`]).
    pub xmin_age: Duration,
    /// Dead tuples in the hot table (default [`HEALTH_DEAD_TUPLES_DEFAULT`]).
    pub dead_tuples: i64,
    /// The NOTIFY queue's usage, 0 to 1 (default [`HEALTH_NOTIFY_USAGE_DEFAULT`]).
    pub notify_usage: f64,
    /// How long past its lease a running job counts as stuck (default
    /// [`HEALTH_STUCK_GRACE_DEFAULT`]).
    pub stuck_grace: Duration,
}

impl Default for HealthLimits {
    fn default() -> Self {
        HealthLimits {
            xmin_age: HEALTH_XMIN_AGE_DEFAULT,
            dead_tuples: HEALTH_DEAD_TUPLES_DEFAULT,
            notify_usage: HEALTH_NOTIFY_USAGE_DEFAULT,
            stuck_grace: HEALTH_STUCK_GRACE_DEFAULT,
        }
    }
}

impl HealthLimits {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Warn about an xmin holder older than `d`.
    pub fn xmin_age(mut self, d: Duration) -> Self {
        self.xmin_age = d;
        self
    }
    /// Warn about more than `n` dead tuples in the hot table.
    pub fn dead_tuples(mut self, n: i64) -> Self {
        self.dead_tuples = n;
        self
    }
    /// Warn when the NOTIFY queue is fuller than `usage` (0 to 1).
    pub fn notify_usage(mut self, usage: f64) -> Self {
        self.notify_usage = usage;
        self
    }
    /// Count running jobs more than `d` past their lease as stuck.
    pub fn stuck_grace(mut self, d: Duration) -> Self {
        self.stuck_grace = d;
        self
    }
}

/// The hot table (`jobs`): tuples and upkeep.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HotTable {
    /// Live tuples, as the statistics collector estimates them.
    pub live_tuples: i64,
    /// Dead tuples not yet vacuumed.
    pub dead_tuples: i64,
    /// The last vacuum, by hand or autovacuum.
    pub last_vacuum: Option<DateTime<Utc>>,
    /// The last analyze, by hand or autovacuum.
    pub last_analyze: Option<DateTime<Utc>>,
}

/// What holds the oldest xmin of the cluster (vacuum removes nothing
/// deleted after it, in any table).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct XminHolder {
    /// `session`, `replication slot` or `prepared transaction`.
    pub kind: String,
    /// A session's pid, a slot's name, a prepared transaction's id.
    pub who: String,
    /// Its age in transactions.
    pub xid_age: i64,
    /// Its age in seconds (a session's transaction, a prepared
    /// transaction's; unknown for a slot).
    pub age_secs: Option<f64>,
    /// A session's user, or a prepared transaction's owner.
    pub user: Option<String>,
    /// A session's `application_name`.
    pub application: Option<String>,
    /// A session's state (`idle in transaction`, `active`), a slot's
    /// (`active`, `inactive`).
    pub state: Option<String>,
    /// A session's client address.
    pub client_addr: Option<String>,
    /// Its database.
    pub database: Option<String>,
}

/// A queue with jobs waiting and no live worker serving it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct UnservedQueue {
    /// The queue.
    pub queue: String,
    /// Its jobs available to run now, counted up to [`HEALTH_UNSERVED_COUNT_CAP`].
    pub waiting: i64,
}

/// Where the count of an unserved queue's waiting jobs stops: enough to
/// tell "a few" from "many" without counting a backlog.
pub const HEALTH_UNSERVED_COUNT_CAP: i64 = 10_000;

/// Running jobs past their lease that the rescuer has not taken back.
#[derive(Debug, Clone, Copy, Serialize)]
#[non_exhaustive]
pub struct StuckRunning {
    /// How many.
    pub count: i64,
    /// How long ago the oldest's lease ran out, in seconds.
    pub oldest_secs: Option<f64>,
}

/// The archive's dated tables.
#[derive(Debug, Clone, Copy, Serialize)]
#[non_exhaustive]
pub struct ArchivePartitions {
    /// Days from today (UTC) on that have a table.
    pub days_ahead: i64,
    /// Whether today's exists.
    pub has_today: bool,
    /// The oldest day kept.
    pub oldest_day: Option<NaiveDate>,
    /// Rows in the default partition (counted up to 1,000): jobs that
    /// finished on a day without a table.
    pub default_rows: i64,
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing; nothing to do.
    Note,
    /// Needs action.
    Warn,
}

/// One thing [`Client::health`] found, in an operator's words.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// Which figure: `hot_table`, `oldest_xmin`, `notify_queue`, `leader`,
    /// `stuck_running`, `archive_partitions`, `discards`, `rescues`.
    pub check: &'static str,
    /// Whether it needs action.
    pub level: Level,
    /// What it is and what it means.
    pub message: String,
    /// What to do.
    pub advice: String,
}

/// The queue's health, as [`Client::health`] reads it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Health {
    /// When it was read (database clock).
    pub checked_at: DateTime<Utc>,
    /// The hot table.
    pub hot_table: HotTable,
    /// The oldest xmin holder, if any.
    pub oldest_xmin: Option<XminHolder>,
    /// The NOTIFY queue's usage, 0 to 1.
    pub notify_queue_usage: f64,
    /// The leader, if its lease holds.
    pub leader: Option<LeaderInfo>,
    /// Running jobs past their lease.
    pub stuck_running: StuckRunning,
    /// The archive's dated tables.
    pub archive_partitions: ArchivePartitions,
    /// Jobs their workers discarded in the last hour (attempts used up, or
    /// by their handler), from the per-minute statistics; the rescuer's
    /// discards are counted by `skiplock_jobs_rescued_total` only.
    pub discarded_last_hour: i64,
    /// Jobs the rescuer took back in the last hour from workers whose lease
    /// ran out (crashed, killed, cut off).
    pub rescued_last_hour: i64,
    /// Queues with jobs waiting to run now that no live worker serves (and
    /// that are not paused): a queue name misspelt in a `Job::QUEUE` or an
    /// enqueue, or a worker that is not deployed. Counted up to
    /// [`HEALTH_UNSERVED_COUNT_CAP`] jobs each.
    pub unserved_queues: Vec<UnservedQueue>,
    /// What needs saying, most urgent first; empty when all is well.
    pub findings: Vec<Finding>,
}

impl Health {
    /// True when a finding needs action.
    pub fn needs_action(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Warn)
    }
}

impl Client {
    /// Reads the queue's health with the default [`HealthLimits`]. See
    /// [`Client::health_with`].
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn health(&self) -> Result<Health> {
        self.health_with(&HealthLimits::default()).await
    }

    /// Reads the queue's health: the hot table's dead tuples and last
    /// vacuum, the oldest xmin holder (a session's snapshot, a replication
    /// slot, a prepared transaction) and its age, the NOTIFY queue's usage,
    /// the leader, running jobs stuck past their lease, and the archive's
    /// dated tables; with a [`Finding`] for each figure past `limits`.
    ///
    /// Seeing other roles' sessions needs `pg_read_all_stats` (or
    /// `pg_monitor`); without it, their snapshots are not seen.
    ///
    /// # Errors
    ///
    /// Database errors only.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: skiplock::Client) -> skiplock::Result<()> {
    /// let health = client.health().await?;
    /// for f in &health.findings {
    ///     eprintln!("{}: {} {}", f.check, f.message, f.advice);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn health_with(&self, limits: &HealthLimits) -> Result<Health> {
        let conn = self.db().conn().await?;
        let on = conn.on();
        let hot = db::health::hot_table(on).await?;
        let xmin = db::health::oldest_xmin(on).await?;
        let notify = db::health::notify_usage(on).await?;
        let leader = db::leader::get(on).await?;
        let grace_ms = i64::try_from(limits.stuck_grace.as_millis()).unwrap_or(i64::MAX);
        let (stuck, stuck_oldest) = db::health::stuck(on, grace_ms).await?;
        let parts = db::health::partitions(on).await?;
        let (discarded, rescued) = db::health::last_hour(on).await?;
        let unserved = db::health::unserved(on, HEALTH_UNSERVED_COUNT_CAP).await?;
        let mut h = Health {
            checked_at: hot.db_now,
            hot_table: HotTable {
                live_tuples: hot.live,
                dead_tuples: hot.dead,
                last_vacuum: hot.last_vacuum,
                last_analyze: hot.last_analyze,
            },
            oldest_xmin: xmin.map(|x| XminHolder {
                kind: x.kind,
                who: x.who,
                xid_age: x.xid_age,
                age_secs: x.secs,
                user: x.usename,
                application: x.application,
                state: x.state,
                client_addr: x.client_addr,
                database: x.datname,
            }),
            notify_queue_usage: notify,
            leader: leader.map(|(id, l)| LeaderInfo { id, elected_at: l.elected_at, expires_at: l.expires_at }),
            stuck_running: StuckRunning { count: stuck, oldest_secs: stuck_oldest },
            archive_partitions: ArchivePartitions {
                days_ahead: parts.ahead,
                has_today: parts.has_today,
                oldest_day: parts.oldest_day,
                default_rows: parts.default_rows,
            },
            discarded_last_hour: discarded,
            rescued_last_hour: rescued,
            unserved_queues: unserved.into_iter().map(|(queue, waiting)| UnservedQueue { queue, waiting }).collect(),
            findings: Vec::new(),
        };
        h.findings = findings(&h, limits);
        Ok(h)
    }
}

/// A duration in seconds for a sentence: `42s`, `12m`, `3.5h`.
fn ago(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.0}s")
    } else if secs < 7200.0 {
        format!("{:.0}m", secs / 60.0)
    } else {
        format!("{:.1}h", secs / 3600.0)
    }
}

/// Whether the holder is older than the limit: by its time where known,
/// else (a slot) by a million transactions.
fn holder_too_old(x: &XminHolder, limit: Duration) -> bool {
    match x.age_secs {
        Some(s) => s >= limit.as_secs_f64(),
        None => x.xid_age >= 1_000_000,
    }
}

/// The findings of `h` past `limits`, most urgent first.
fn findings(h: &Health, limits: &HealthLimits) -> Vec<Finding> {
    let mut out = Vec::new();
    let warn = |check, message: String, advice: String| Finding { check, level: Level::Warn, message, advice };
    let holder = h.oldest_xmin.as_ref().filter(|x| holder_too_old(x, limits.xmin_age));
    if let Some(x) = holder {
        let age = x.age_secs.map_or_else(|| format!("{} transactions", x.xid_age), ago);
        let (what, advice) = match x.kind.as_str() {
            "session" => (
                format!(
                    "session {} (user {}, application {:?}, {}{}) has held a snapshot for {age}",
                    x.who,
                    x.user.as_deref().unwrap_or("?"),
                    x.application.as_deref().unwrap_or(""),
                    x.state.as_deref().unwrap_or("state unknown"),
                    x.client_addr.as_deref().map(|a| format!(", from {a}")).unwrap_or_default(),
                ),
                format!(
                    "end its transaction, or the session: SELECT pg_terminate_backend({}); and find what left it \
                     open (idle_in_transaction_session_timeout ends idle ones by itself)",
                    x.who
                ),
            ),
            "replication slot" => (
                format!(
                    "replication slot {:?} ({}) holds the xmin {age} back",
                    x.who,
                    x.state.as_deref().unwrap_or("")
                ),
                format!(
                    "if its consumer is gone for good, drop it: SELECT pg_drop_replication_slot('{}'); else bring \
                     the consumer (a standby, a CDC tool) back",
                    x.who
                ),
            ),
            _ => (
                format!("prepared transaction {:?} has been waiting for {age}", x.who),
                format!("finish it: COMMIT PREPARED '{}' or ROLLBACK PREPARED '{}'", x.who, x.who),
            ),
        };
        out.push(warn(
            "oldest_xmin",
            format!(
                "{what}: vacuum cannot remove any row deleted since, in any table, so finished jobs' dead rows pile \
                 up in the hot table and claims slow down"
            ),
            advice,
        ));
    }
    let t = &h.hot_table;
    if t.dead_tuples > limits.dead_tuples && t.dead_tuples > t.live_tuples {
        let since = t.last_vacuum.map_or_else(
            || "never vacuumed".to_owned(),
            |v| format!("last vacuumed {} ago", ago((h.checked_at - v).num_milliseconds() as f64 / 1000.0)),
        );
        let advice = if holder.is_some() {
            "first end what holds the xmin back (above): until then no vacuum can remove them".to_owned()
        } else {
            "check that autovacuum runs (autovacuum = on, enough autovacuum_max_workers) and that a worker with \
             maintenance on is running (its vacuum service vacuums the hot table after bursts)"
                .to_owned()
        };
        out.push(warn(
            "hot_table",
            format!(
                "the hot table holds {} dead tuples beside {} live ones ({since}): every claim scans past them",
                t.dead_tuples, t.live_tuples
            ),
            advice,
        ));
    }
    if h.notify_queue_usage > limits.notify_usage {
        out.push(warn(
            "notify_queue",
            format!(
                "the server's NOTIFY queue is {:.0}% full; when full, every enqueue's wake-up fails",
                h.notify_queue_usage * 100.0
            ),
            "find the session that LISTENs and never reads (pg_stat_activity, state idle, a LISTEN query) and end \
             it; workers poll meanwhile"
                .to_owned(),
        ));
    }
    if h.leader.is_none() {
        out.push(warn(
            "leader",
            "no process leads the maintenance: nothing rescues jobs of dead workers, promotes scheduled ones, runs \
             periodic jobs or archives"
                .to_owned(),
            "start a worker with maintenance on (the default; `skiplock work` runs it), or check why the running \
             ones lost their lease (their logs say)"
                .to_owned(),
        ));
    }
    for u in &h.unserved_queues {
        let many = if u.waiting >= HEALTH_UNSERVED_COUNT_CAP { "or more " } else { "" };
        out.push(warn(
            "unserved_queues",
            format!("queue {:?} has {} {many}jobs waiting, and no live worker serves it", u.queue, u.waiting),
            format!(
                "start a worker for it (skiplock work --queue {}, or .queue({:?}, n) on a Worker), or check the queue \
                 name its jobs are enqueued with (a Job::QUEUE or EnqueueOptions::queue)",
                u.queue, u.queue
            ),
        ));
    }
    let s = &h.stuck_running;
    if s.count > 0 {
        out.push(warn(
            "stuck_running",
            format!(
                "{} running jobs are past their lease (the oldest by {}) and have not been rescued",
                s.count,
                s.oldest_secs.map_or_else(|| "?".to_owned(), ago)
            ),
            "check that a leader is running (above) and its log for rescuer errors; the jobs go back to the queue \
             once it runs"
                .to_owned(),
        ));
    }
    if h.discarded_last_hour > 0 {
        out.push(Finding {
            check: "discards",
            level: Level::Note,
            message: format!(
                "{} jobs were discarded in the last hour (their attempts used up, or by their handler)",
                h.discarded_last_hour
            ),
            advice: "look at their errors: skiplock jobs list --state discarded; retry the ones worth it: skiplock jobs retry ID"
                .to_owned(),
        });
    }
    if h.rescued_last_hour > 0 {
        out.push(Finding {
            check: "rescues",
            level: Level::Note,
            message: format!(
                "{} jobs were taken back in the last hour from workers whose lease ran out (crashed, killed, cut off \
                 from the database, or blocked past their lease)",
                h.rescued_last_hour
            ),
            advice: "if it keeps happening, look at the workers' logs and restarts; a handler that blocks its thread \
                     stops its heartbeats too"
                .to_owned(),
        });
    }
    let p = &h.archive_partitions;
    if !p.has_today || p.days_ahead < 2 || p.default_rows > 0 {
        let mut what = Vec::new();
        if !p.has_today {
            what.push("today has no archive table".to_owned());
        }
        if p.days_ahead < 2 {
            what.push(format!("{} days from today on have one (tomorrow's is made ahead)", p.days_ahead));
        }
        if p.default_rows > 0 {
            what.push(format!("{} finished jobs sit in the default partition", p.default_rows));
        }
        out.push(warn(
            "archive_partitions",
            format!(
                "the archive's dated tables are behind: {}; finished jobs go to the default partition, which \
                 retention cannot drop by day",
                what.join(", ")
            ),
            "run a worker with maintenance on (its archive service makes the days ahead and moves the default's \
             rows), or `skiplock migrate` if the schema is behind"
                .to_owned(),
        ));
    }
    // Warnings before notes; otherwise in the order above.
    out.sort_by_key(|f| std::cmp::Reverse(f.level));
    out
}
