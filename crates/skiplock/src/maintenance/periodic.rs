//! Periodic jobs: a job enqueued on a cron schedule or at a fixed interval,
//! by the leader, once per scheduled run across the fleet.
//!
//! Each periodic job has a row in `{schema}.periodic` holding its next run
//! not yet enqueued. When it is due, the leader moves `next_run_at` past the
//! runs it enqueues with a compare-and-set (`db/periodic/advance.sql`) and
//! inserts them in the same transaction: a second process that read the same
//! `next_run_at` (two processes believing they lead, for a moment) finds it
//! changed and inserts nothing. Runs are enqueued when due, with `run_at` set
//! to their scheduled time.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::leader::Leadership;
use crate::client::enqueue::chunks;
use crate::client::{EnqueueOptions, NewJob};
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::job::Job;
use crate::service::Service;
use crate::validate;

/// How late a run may be enqueued and still count as on time, under
/// [`Missed::Skip`]: 1 minute. Runs due longer ago than this (nothing was up
/// to enqueue them) are skipped.
pub const PERIODIC_GRACE_DEFAULT: Duration = Duration::from_secs(60);
/// The shortest fixed interval: 1 second.
pub const PERIODIC_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// Most runs of one periodic job enqueued per pass (back-filling with
/// [`Missed::RunAll`] continues on the next pass): 1,000.
pub const PERIODIC_BACKFILL_MAX: usize = 1000;
/// Longest sleep of the periodic service between passes: 1 second (it
/// sleeps until the next run is due, but looks again at least this often).
pub const PERIODIC_CHECK_MAX: Duration = Duration::from_secs(1);

/// What to do about runs that fell due while no process was up to enqueue
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub enum Missed {
    /// Enqueue the runs at most the grace late (default
    /// [`PERIODIC_GRACE_DEFAULT`]) and skip older ones: no back-fill (the
    /// default).
    #[default]
    Skip,
    /// Enqueue every missed run, oldest first ([`PERIODIC_BACKFILL_MAX`] per
    /// pass).
    RunAll,
}

/// A job enqueued on a schedule: a cron expression (seconds optional, in an
/// explicit time zone, UTC by default) or a fixed interval. Register it with
/// [`WorkerBuilder::periodic`](crate::WorkerBuilder::periodic); the fleet's
/// leader enqueues each run once.
///
/// The name identifies the schedule across processes and restarts: every
/// process should register the same schedule under a name. Changing a
/// name's schedule restarts it from its next run after now.
///
/// # Example: every five minutes, and daily at 03:00 Paris time
///
/// ```
/// use std::time::Duration;
/// use serde::{Deserialize, Serialize};
/// use skiplock::{EnqueueOptions, Job, PeriodicJob};
///
/// #[derive(Serialize, Deserialize)]
/// struct Sweep { older_than_days: u32 }
/// impl Job for Sweep { const KIND: &'static str = "sweep"; }
///
/// let sweep = PeriodicJob::every("sweep", Duration::from_secs(300))
///     .job(&Sweep { older_than_days: 30 }, EnqueueOptions::new());
/// let report = PeriodicJob::cron("nightly-report", "0 0 3 * * *")
///     .timezone("Europe/Paris")
///     .job(&Sweep { older_than_days: 1 }, EnqueueOptions::new().queue("reports"));
/// # let _ = (sweep, report);
/// ```
#[derive(Debug, Clone)]
pub struct PeriodicJob {
    name: String,
    spec: Spec,
    timezone: Option<String>,
    job: Option<std::result::Result<NewJob, String>>,
    missed: Missed,
    grace: Duration,
}

#[derive(Debug, Clone)]
enum Spec {
    Cron(String),
    Every(Duration),
}

impl PeriodicJob {
    /// A job enqueued on the cron schedule `expr`: five fields (minute, hour,
    /// day of month, month, day of week) or six with seconds first, as in
    /// `*/10 * * * * *` (every ten seconds). Evaluated in UTC unless
    /// [`PeriodicJob::timezone`] says otherwise. The expression is checked at
    /// registration.
    pub fn cron(name: impl Into<String>, expr: impl Into<String>) -> Self {
        Self::new(name.into(), Spec::Cron(expr.into()))
    }

    /// A job enqueued every `interval` (at least [`PERIODIC_INTERVAL_MIN`]),
    /// the first run one interval after the schedule is first registered.
    pub fn every(name: impl Into<String>, interval: Duration) -> Self {
        Self::new(name.into(), Spec::Every(interval))
    }

    fn new(name: String, spec: Spec) -> Self {
        PeriodicJob { name, spec, timezone: None, job: None, missed: Missed::Skip, grace: PERIODIC_GRACE_DEFAULT }
    }

    /// The IANA time zone the cron expression is evaluated in, such as
    /// `Europe/Paris` (default `UTC`). Runs at a wall-clock time that a
    /// daylight-saving change skips are not run that day; repeated times run
    /// once.
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = Some(tz.into());
        self
    }

    /// The typed job each run enqueues, with its options. The run's
    /// `run_at` is its scheduled time; its metadata gets `periodic` (the
    /// name) and `scheduled_at`.
    pub fn job<J: Job>(mut self, job: &J, opts: EnqueueOptions) -> Self {
        self.job = Some(NewJob::typed(job, opts).map_err(|e| e.to_string()));
        self
    }

    /// The periodic job's name, and the job each run enqueues (if it was
    /// given and could be encoded), for the worker's checks at build.
    pub(crate) fn target(&self) -> (&str, Option<&NewJob>) {
        (&self.name, self.job.as_ref().and_then(|j| j.as_ref().ok()))
    }

    /// The job each run enqueues, of any kind.
    pub fn new_job(mut self, job: NewJob) -> Self {
        self.job = Some(Ok(job));
        self
    }

    /// What to do with runs missed while nothing was up (default
    /// [`Missed::Skip`]).
    pub fn missed(mut self, missed: Missed) -> Self {
        self.missed = missed;
        self
    }

    /// How late a run may be and still be enqueued under [`Missed::Skip`]
    /// (default [`PERIODIC_GRACE_DEFAULT`]).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Checks the settings: the name, the expression and time zone (and that
    /// the schedule fires at all), the interval, the job.
    pub(crate) fn compile(self) -> Result<Periodic> {
        let name = self.name;
        validate::kind("periodic", &name)?;
        let tz_name = self.timezone.unwrap_or_else(|| "UTC".to_owned());
        let tz: chrono_tz::Tz = tz_name.parse().map_err(|_| {
            Error::invalid(
                "timezone",
                format!("{} of periodic job {name:?} is not an IANA time zone (such as UTC or Europe/Paris)", {
                    validate::shorten(&tz_name)
                }),
            )
        })?;
        let schedule = match self.spec {
            Spec::Cron(expr) => {
                let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Optional).build();
                let cron = parser.parse(&expr).map_err(|e| {
                    Error::invalid("cron", format!("{} of periodic job {name:?}: {e}", validate::shorten(&expr)))
                })?;
                let text = format!("cron {expr} {tz_name}");
                Schedule::Cron { cron: Box::new(cron), tz, expr, text }
            }
            Spec::Every(every) => {
                if every < PERIODIC_INTERVAL_MIN || every > validate::SCHEDULE_HORIZON {
                    return Err(Error::invalid(
                        "interval",
                        format!("{every:?} of periodic job {name:?} is out of range 1s to ten years"),
                    ));
                }
                Schedule::Every(every)
            }
        };
        if let Schedule::Cron { expr, .. } = &schedule
            && schedule.next_after(Utc::now()).is_none()
        {
            return Err(Error::invalid(
                "cron",
                format!("{} of periodic job {name:?} never fires", validate::shorten(expr)),
            ));
        }
        let job = match self.job {
            None => return Err(Error::invalid("job", format!("periodic job {name:?} has no job: call .job(…)"))),
            Some(Err(e)) => return Err(Error::invalid("job", format!("periodic job {name:?}: {e}"))),
            Some(Ok(job)) => job,
        };
        job.check("job.", validate::ARGS_MAX_BYTES_DEFAULT)?;
        if job.opts.run_at.is_some() || job.opts.delay.is_some() {
            return Err(Error::invalid(
                "job",
                format!("periodic job {name:?}: run_at and delay come from the schedule"),
            ));
        }
        Ok(Periodic { name, schedule, job, missed: self.missed, grace: self.grace })
    }
}

/// A checked periodic job.
#[derive(Debug, Clone)]
pub(crate) struct Periodic {
    pub name: String,
    schedule: Schedule,
    job: NewJob,
    missed: Missed,
    grace: Duration,
}

#[derive(Debug, Clone)]
enum Schedule {
    Cron { cron: Box<croner::Cron>, tz: chrono_tz::Tz, expr: String, text: String },
    Every(Duration),
}

impl Schedule {
    /// The schedule as stored in its row: a change restarts it.
    fn text(&self) -> String {
        match self {
            Schedule::Cron { text, .. } => text.clone(),
            Schedule::Every(d) => format!("every {}ms", d.as_millis()),
        }
    }

    /// The first run strictly after `t`, if any.
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.occurrence(t, false)
    }

    fn occurrence(&self, t: DateTime<Utc>, inclusive: bool) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { cron, tz, .. } => {
                // Whole seconds: cron fields have no finer unit.
                let t = t.with_timezone(tz);
                cron.find_next_occurrence(&t, inclusive).ok().map(|n| n.with_timezone(&Utc))
            }
            Schedule::Every(d) => {
                let d = TimeDelta::from_std(*d).ok()?;
                if inclusive { Some(t) } else { t.checked_add_signed(d) }
            }
        }
    }

    /// The runs from `next` (a run) up to `now`, from `from` on, at most
    /// `max`; and the run after the last one returned (or after `now`).
    fn due(
        &self,
        next: DateTime<Utc>,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        max: usize,
    ) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let mut runs = Vec::new();
        match self {
            Schedule::Every(d) => {
                let step = TimeDelta::from_std(*d).expect("checked at registration");
                let step_ms = step.num_milliseconds().max(1);
                let skip = ((from - next).num_milliseconds().max(0) + step_ms - 1) / step_ms;
                let mut t = next + TimeDelta::milliseconds(skip * step_ms);
                while t <= now && runs.len() < max {
                    runs.push(t);
                    t += step;
                }
                if runs.len() < max {
                    // Past now: the first run after it.
                    let behind = (now - next).num_milliseconds().max(0) / step_ms + 1;
                    return (runs, Some(next + TimeDelta::milliseconds(behind * step_ms)));
                }
                (runs, Some(t))
            }
            Schedule::Cron { .. } => {
                let mut t = if from <= next { Some(next) } else { self.occurrence(from, true) };
                while let Some(at) = t {
                    if at > now || runs.len() >= max {
                        return (runs, Some(at));
                    }
                    runs.push(at);
                    t = self.next_after(at);
                }
                (runs, None)
            }
        }
    }
}

/// One run a periodic pass enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PeriodicRun {
    /// The periodic job's name.
    pub name: String,
    /// The run's scheduled time.
    pub run_at: DateTime<Utc>,
    /// The job's id (or, when its unique key was held, the holder's).
    pub id: i64,
    /// False when its unique key was held, so nothing was inserted.
    pub inserted: bool,
}

/// What one periodic pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct PeriodicReport {
    /// Runs enqueued, per job oldest first.
    pub enqueued: Vec<PeriodicRun>,
    /// The earliest next run of any periodic job (database clock).
    pub next_run_at: Option<DateTime<Utc>>,
    /// The database's clock during the pass.
    pub db_now: Option<DateTime<Utc>>,
}

/// One pass over every periodic job in `jobs`, inside the leader's
/// transaction `on`.
pub(crate) async fn pass(db: &Db, on: db::On<'_>, jobs: &[Periodic]) -> Result<PeriodicReport> {
    let mut report = PeriodicReport::default();
    if jobs.is_empty() {
        return Ok(report);
    }
    let names: Vec<String> = jobs.iter().map(|p| p.name.clone()).collect();
    let rows = db::periodic::list(on, Some(&names)).await?;
    let now = match rows.first() {
        Some(r) => r.db_now,
        None => db::leader::clock(on).await?,
    };
    report.db_now = Some(now);
    for p in jobs {
        let text = p.schedule.text();
        let next = match rows.iter().find(|r| r.name == p.name) {
            Some(r) if r.schedule == text => r.next_run_at,
            _ => {
                let Some(first) = p.schedule.next_after(now) else {
                    tracing::warn!(name = %p.name, "periodic job never fires again; skipping it");
                    continue;
                };
                db::periodic::reset(on, &p.name, &text, first).await?
            }
        };
        if next > now {
            report.next_run_at = Some(report.next_run_at.map_or(next, |n| n.min(next)));
            continue;
        }
        let from = match p.missed {
            Missed::Skip => next.max(now - TimeDelta::from_std(p.grace).unwrap_or(TimeDelta::MAX)),
            Missed::RunAll => next,
        };
        let (runs, after) = p.schedule.due(next, from, now, PERIODIC_BACKFILL_MAX);
        let after = after.unwrap_or(DateTime::<Utc>::MAX_UTC);
        if runs.len() as u64 > 1 || from > next {
            tracing::info!(name = %p.name, runs = runs.len(), since = %next, "periodic job is behind schedule");
        }
        if !db::periodic::advance(on, &p.name, next, after, runs.last().copied()).await? {
            // Another process enqueued these runs.
            continue;
        }
        report.next_run_at = Some(report.next_run_at.map_or(after, |n| n.min(after)));
        if runs.is_empty() {
            continue;
        }
        let jobs: Vec<NewJob> = runs.iter().map(|&at| p.run(at)).collect();
        // In the leader's transaction, with the multi-row INSERT; every
        // queue with a run due now is woken (at commit).
        let mut done = Vec::new();
        for cols in chunks(jobs, validate::ARGS_MAX_BYTES_DEFAULT)? {
            let wake = |c: &db::columns::Columns| c.due_queues().into_iter().map(str::to_owned).collect();
            done.extend(db::insert::insert(db, on, None, &cols, &wake).await?);
        }
        for (&run_at, e) in runs.iter().zip(done) {
            report.enqueued.push(PeriodicRun { name: p.name.clone(), run_at, id: e.id, inserted: e.inserted });
        }
    }
    Ok(report)
}

impl Periodic {
    /// The job of the run at `at`.
    fn run(&self, at: DateTime<Utc>) -> NewJob {
        let mut job = self.job.clone();
        job.opts.run_at = Some(at);
        let mut meta = match job.opts.meta.take() {
            Some(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        meta.insert("periodic".into(), self.name.clone().into());
        meta.insert("scheduled_at".into(), at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into());
        job.opts.meta = Some(meta.into());
        job
    }
}

/// The periodic jobs as a service: a pass whenever a run falls due (and at
/// least every [`PERIODIC_CHECK_MAX`]) while this process leads.
pub(crate) struct PeriodicJobs {
    jobs: Vec<Periodic>,
    db: Db,
    leadership: Arc<Leadership>,
}

impl PeriodicJobs {
    /// The service for `jobs`, already checked by [`PeriodicJob::compile`].
    pub fn new(jobs: Vec<Periodic>, db: Db, leadership: Arc<Leadership>) -> PeriodicJobs {
        PeriodicJobs { jobs, db, leadership }
    }

    /// Whether there is anything to run.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Says which runs a pass enqueued.
    pub(crate) fn announce(&self, report: &PeriodicReport) {
        for run in &report.enqueued {
            self.leadership.events.emit(Event::PeriodicEnqueued {
                name: run.name.clone(),
                run_at: run.run_at,
                id: run.id,
            });
        }
    }

    pub(crate) fn jobs(&self) -> &[Periodic] {
        &self.jobs
    }
}

impl Service for PeriodicJobs {
    const NAME: &'static str = "periodic";
    type Report = PeriodicReport;

    async fn run_once(&self) -> Result<Option<PeriodicReport>> {
        let out = super::guard::guarded!(&self.leadership, &self.db, |on| pass(&self.db, on, &self.jobs).await?)?;
        let report = out.map(|(r, _, _)| r);
        if let Some(r) = &report {
            self.announce(r);
        }
        Ok(report)
    }

    fn next_pass(&self, last: &Result<Option<PeriodicReport>>) -> Duration {
        let wait = match last {
            Ok(Some(r)) => match (r.next_run_at, r.db_now) {
                (Some(next), Some(now)) => (next - now).to_std().unwrap_or(Duration::ZERO),
                _ => PERIODIC_CHECK_MAX,
            },
            _ => PERIODIC_CHECK_MAX,
        };
        wait.clamp(Duration::from_millis(5), PERIODIC_CHECK_MAX)
    }
}
