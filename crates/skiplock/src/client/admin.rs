//! Operator actions and views: what the CLI and dashboard call (neither
//! runs SQL of its own): jobs, queues, who leads the fleet's maintenance,
//! the periodic jobs' schedules.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::facade::Client;
use crate::db;
use crate::db::job::{self as q, JobListParams};
use crate::db::queue as qq;
use crate::error::{Error, Result};
use crate::job::{JobRow, JobState};
use crate::validate;

/// Most jobs one [`Client::jobs_list`] call returns.
pub const LIST_LIMIT_MAX: i64 = 1000;
/// Jobs a [`Client::jobs_list`] call returns unless told otherwise.
pub const LIST_LIMIT_DEFAULT: i64 = 50;

/// Which jobs to list. Empty fields match everything.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct JobFilter {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs with ids below this (for paging: pass the last id seen).
    pub before_id: Option<i64>,
    /// At most this many (default [`LIST_LIMIT_DEFAULT`], at most [`LIST_LIMIT_MAX`]).
    pub limit: Option<i64>,
}

impl JobFilter {
    /// Matches every job.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only jobs in `state`.
    pub fn state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }
    /// Only jobs of `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Only jobs of `kind`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }
    /// Only jobs with ids below `id`.
    pub fn before_id(mut self, id: i64) -> Self {
        self.before_id = Some(id);
        self
    }
    /// At most `n` jobs.
    pub fn limit(mut self, n: i64) -> Self {
        self.limit = Some(n);
        self
    }
}

/// The result of cancelling one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelResult {
    /// It was not running: it is cancelled now.
    Cancelled,
    /// It is running: its handler has been told to stop, and the job ends as
    /// cancelled when it does (or when its lease runs out).
    Cancelling,
    /// No unfinished job has this id (finished already, or unknown).
    NotFound,
}

/// Counts for one queue and state.
#[derive(Debug, Clone, Serialize)]
pub struct QueueStats {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: JobState,
    /// Jobs in it.
    pub count: i64,
    /// For `available`: how long the oldest one has been due, in seconds.
    pub oldest_available_secs: Option<f64>,
}

/// A queue's settings and live counts.
#[derive(Debug, Clone, Serialize)]
pub struct QueueInfo {
    /// Its name.
    pub name: String,
    /// Whether claims from it are stopped.
    pub paused: bool,
    /// Jobs ready to run.
    pub available: i64,
    /// Jobs running.
    pub running: i64,
    /// Jobs scheduled or waiting to retry.
    pub waiting: i64,
}

impl Client {
    /// One job by id, unfinished or archived.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        let conn = self.db().conn().await?;
        let row = q::get(conn.on(), id).await?;
        row.as_ref().map(JobRow::from_row).transpose()
    }

    /// Jobs matching `filter`, newest first.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad queue or kind name or limit.
    pub async fn jobs_list(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        if let Some(qn) = &filter.queue {
            validate::queue("queue", qn)?;
        }
        if let Some(k) = &filter.kind {
            validate::kind("kind", k)?;
        }
        let limit = filter.limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if !(1..=LIST_LIMIT_MAX).contains(&limit) {
            return Err(Error::invalid("limit", format!("{limit} is out of range 1 to {LIST_LIMIT_MAX}")));
        }
        let p = JobListParams {
            state: filter.state.map(JobState::as_str),
            queue: filter.queue.as_deref(),
            kind: filter.kind.as_deref(),
            before_id: filter.before_id,
            limit,
        };
        let conn = self.db().conn().await?;
        let rows = q::list(conn.on(), &p).await?;
        rows.iter().map(JobRow::from_row).collect()
    }

    /// Job counts by queue and state, with the age of each queue's oldest
    /// available job.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn stats(&self) -> Result<Vec<QueueStats>> {
        let conn = self.db().conn().await?;
        let rows = q::stats(conn.on()).await?;
        rows.iter()
            .map(|r| {
                Ok(QueueStats {
                    queue: r.get(0),
                    state: r.get::<_, &str>(1).parse()?,
                    count: r.get(2),
                    oldest_available_secs: r.get(3),
                })
            })
            .collect()
    }

    /// Cancels jobs by id, in one statement. Waiting jobs are cancelled at
    /// once; running ones are told to stop (see [`CancelResult`]). One
    /// result per distinct id, in the order given: an id given twice is
    /// answered once (a job is cancelled once).
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn cancel(&self, ids: &[i64]) -> Result<Vec<(i64, CancelResult)>> {
        let conn = self.db().conn().await?;
        let mut found: std::collections::HashMap<i64, CancelResult> = std::collections::HashMap::new();
        let mut todo: Vec<i64> = ids.to_vec();
        // Migration 3's cancel locks the jobs before it looks at them; under
        // migration 2's, a job claimed between the statement's snapshot and
        // its row lock was seen by neither branch. It is still unfinished
        // then, so ask again.
        for _ in 0..5 {
            for (id, st) in q::cancel(conn.on(), &todo).await? {
                let r = if st == "cancelled" { CancelResult::Cancelled } else { CancelResult::Cancelling };
                found.insert(id, r);
            }
            let missing: Vec<i64> = todo.iter().copied().filter(|id| !found.contains_key(id)).collect();
            if missing.is_empty() {
                break;
            }
            todo = q::hot_ids(conn.on(), &missing).await?;
            if todo.is_empty() {
                break;
            }
        }
        let mut seen = std::collections::HashSet::new();
        Ok(ids
            .iter()
            .filter(|id| seen.insert(**id))
            .map(|id| (*id, found.get(id).copied().unwrap_or(CancelResult::NotFound)))
            .collect())
    }

    /// Makes jobs available again: finished ones come back from the archive
    /// with at least one attempt left, waiting ones run now. Returns the ids
    /// that were retried; running and unknown ids are left out.
    ///
    /// # Errors
    ///
    /// [`Error::Duplicate`] when a retried job's unique key is held by
    /// another unfinished job (nothing is retried then).
    pub async fn retry(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let conn = self.db().conn().await?;
        q::retry(conn.on(), ids).await
    }

    /// Pauses a queue: claims from it return nothing until it is resumed.
    /// Jobs keep arriving and running jobs finish.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad queue name.
    pub async fn queue_pause(&self, queue: &str) -> Result<()> {
        self.queue_set_paused(queue, true).await
    }

    /// Resumes a paused queue; its workers are woken.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad queue name.
    pub async fn queue_resume(&self, queue: &str) -> Result<()> {
        self.queue_set_paused(queue, false).await
    }

    async fn queue_set_paused(&self, queue: &str, paused: bool) -> Result<()> {
        validate::queue("queue", queue)?;
        let conn = self.db().conn().await?;
        qq::set_paused(conn.on(), queue, paused).await?;
        Ok(())
    }

    /// Every queue with jobs or settings, with counts.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let conn = self.db().conn().await?;
        let rows = qq::list(conn.on()).await?;
        Ok(rows
            .iter()
            .map(|r| QueueInfo {
                name: r.get(0),
                paused: r.get(1),
                available: r.get(2),
                running: r.get(3),
                waiting: r.get(4),
            })
            .collect())
    }
}

/// Who leads the fleet now, as [`Client::leader`]
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaderInfo {
    /// The leader's worker id.
    pub id: String,
    /// When it was elected (database clock).
    pub elected_at: DateTime<Utc>,
    /// When its lease runs out unless renewed (database clock).
    pub expires_at: DateTime<Utc>,
}

/// A periodic job's state, as [`Client::periodic_jobs`]
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PeriodicInfo {
    /// Its name.
    pub name: String,
    /// Its schedule, as registered (`cron <expr> <zone>`, `every <n>ms`).
    pub schedule: String,
    /// Its next run not yet enqueued.
    pub next_run_at: DateTime<Utc>,
    /// Its last run enqueued.
    pub last_run_at: Option<DateTime<Utc>>,
}

impl From<db::periodic::PeriodicRow> for PeriodicInfo {
    fn from(r: db::periodic::PeriodicRow) -> Self {
        PeriodicInfo { name: r.name, schedule: r.schedule, next_run_at: r.next_run_at, last_run_at: r.last_run_at }
    }
}

impl Client {
    /// The process that leads the fleet's maintenance now, if any (a lease
    /// that ran out does not count).
    ///
    /// # Errors
    ///
    /// Database errors only.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: skiplock::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// match client.leader().await? {
    ///     Some(l) => println!("{} leads until {}", l.id, l.expires_at),
    ///     None => println!("no leader: is any worker running?"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leader(&self) -> Result<Option<LeaderInfo>> {
        let conn = self.db().conn().await?;
        let row = db::leader::get(conn.on()).await?;
        Ok(row.map(|(id, h)| LeaderInfo { id, elected_at: h.elected_at, expires_at: h.expires_at }))
    }

    /// Every periodic job the fleet has registered, with its next run.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn periodic_jobs(&self) -> Result<Vec<PeriodicInfo>> {
        let conn = self.db().conn().await?;
        let rows = db::periodic::list(conn.on(), None).await?;
        Ok(rows.into_iter().map(PeriodicInfo::from).collect())
    }
}
