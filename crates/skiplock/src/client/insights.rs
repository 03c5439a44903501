//! What a dashboard reads and does, cheaply: the job search with keyset
//! pages over hot and archived jobs, bulk actions by filter in bounded
//! batches, the workers registry, the queue depth and per-minute statistics
//! the runtime and the leader record (so a page view never scans the jobs
//! table), and periodic jobs' switches. `skiplock-dashboard` calls only
//! these and the admin methods; neither runs SQL of its own.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::admin::{CancelResult, QueueStats};
use super::facade::Client;
use crate::db::insights::{self as q, SearchParams};
use crate::error::{Error, Result};
use crate::job::{JobRow, JobState};
use crate::validate;

/// Most jobs one [`Client::jobs_search`] page holds: 500.
pub const SEARCH_LIMIT_MAX: i64 = 500;
/// Jobs a [`Client::jobs_search`] page holds unless told otherwise: 50.
pub const SEARCH_LIMIT_DEFAULT: i64 = 50;
/// Jobs [`Client::jobs_count`] counts at most, in each of the hot table and
/// the archive, unless told otherwise: 100,000.
pub const COUNT_CAP_DEFAULT: i64 = 100_000;
/// Jobs one statement of a bulk action acts on: 1,000.
pub const BULK_BATCH: i64 = 1000;
/// Most jobs one [`Client::jobs_bulk`] call acts on unless told otherwise:
/// 100,000 (call it again for the rest).
pub const BULK_MAX_DEFAULT: u64 = 100_000;

/// A condition on a job's args: a document they must contain, or a path
/// that must exist in them.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ArgsFilter {
    /// The args contain this document (`args @> …`; backed by a GIN index
    /// on the archive).
    Contains(serde_json::Value),
    /// The args have a value at this path of object keys (`args #> …`).
    HasPath(Vec<String>),
}

impl ArgsFilter {
    /// Reads what an operator types: `key=value` (the value as JSON if it
    /// is JSON, `42`, `true`, `"x"`, else as a string), a dotted path for
    /// nested keys (`user.id=7`), a JSON object to contain (`{"a": 1}`), or
    /// a path alone (`user.id`) for "has this key".
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for `args` when the text is empty, a key is
    /// empty, or a JSON object does not parse.
    ///
    /// # Example
    ///
    /// ```
    /// use skiplock::ArgsFilter;
    /// assert_eq!(
    ///     ArgsFilter::parse("user.id=7")?,
    ///     ArgsFilter::Contains(serde_json::json!({ "user": { "id": 7 } }))
    /// );
    /// assert_eq!(ArgsFilter::parse("to")?, ArgsFilter::HasPath(vec!["to".into()]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn parse(text: &str) -> Result<ArgsFilter> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::invalid("args", "is empty"));
        }
        if text.starts_with('{') {
            let doc: serde_json::Value =
                serde_json::from_str(text).map_err(|e| Error::invalid("args", format!("not a JSON object: {e}")))?;
            return Ok(ArgsFilter::Contains(doc));
        }
        let (path, value) = match text.split_once('=') {
            Some((p, v)) => (p.trim(), Some(v.trim())),
            None => (text, None),
        };
        let keys: Vec<String> = path.split('.').map(|k| k.trim().to_owned()).collect();
        if keys.iter().any(String::is_empty) {
            return Err(Error::invalid("args", format!("{} has an empty key", validate::shorten(path))));
        }
        let Some(value) = value else { return Ok(ArgsFilter::HasPath(keys)) };
        let mut doc = serde_json::from_str::<serde_json::Value>(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
        for key in keys.into_iter().rev() {
            doc = serde_json::Value::Object([(key, doc)].into_iter().collect());
        }
        Ok(ArgsFilter::Contains(doc))
    }
}

/// Which jobs to find, hot and archived alike, newest first. Empty fields
/// match everything; given ones must all match.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct JobSearch {
    /// Only jobs in one of these states (empty: any).
    pub states: Vec<JobState>,
    /// Only jobs of this queue.
    pub queue: Option<String>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs with this tag.
    pub tag: Option<String>,
    /// Only the job with this id.
    pub id: Option<i64>,
    /// Only jobs whose args match.
    pub args: Option<ArgsFilter>,
    /// The next page: only ids below this ([`JobPage::older`]).
    pub before: Option<i64>,
    /// The page before: only ids above this ([`JobPage::newer`]).
    pub after: Option<i64>,
    /// No job with an id above this (a snapshot: jobs enqueued later are
    /// left out).
    pub max_id: Option<i64>,
    /// At most this many (default [`SEARCH_LIMIT_DEFAULT`], at most
    /// [`SEARCH_LIMIT_MAX`]).
    pub limit: Option<i64>,
}

impl JobSearch {
    /// Matches every job.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only jobs in `state` (call again for more states).
    pub fn state(mut self, state: JobState) -> Self {
        self.states.push(state);
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
    /// Only jobs tagged `tag`.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }
    /// Only the job `id`.
    pub fn id(mut self, id: i64) -> Self {
        self.id = Some(id);
        self
    }
    /// Only jobs whose args match `filter`.
    pub fn args(mut self, filter: ArgsFilter) -> Self {
        self.args = Some(filter);
        self
    }
    /// Only ids below `id` (the next page).
    pub fn before(mut self, id: i64) -> Self {
        self.before = Some(id);
        self
    }
    /// Only ids above `id` (the page before).
    pub fn after(mut self, id: i64) -> Self {
        self.after = Some(id);
        self
    }
    /// No id above `id`.
    pub fn max_id(mut self, id: i64) -> Self {
        self.max_id = Some(id);
        self
    }
    /// At most `n` jobs.
    pub fn limit(mut self, n: i64) -> Self {
        self.limit = Some(n);
        self
    }

    fn check(&self) -> Result<()> {
        if let Some(qn) = &self.queue {
            validate::queue("queue", qn)?;
        }
        if let Some(k) = &self.kind {
            validate::kind("kind", k)?;
        }
        if let Some(t) = &self.tag {
            validate::text("tag", t, validate::TAG_MAX)?;
        }
        Ok(())
    }

    fn params(&self) -> SearchParams<'_> {
        let (args, args_path) = match &self.args {
            Some(ArgsFilter::Contains(doc)) => (Some(doc), None),
            Some(ArgsFilter::HasPath(p)) => (None, Some(p.as_slice())),
            None => (None, None),
        };
        SearchParams {
            states: (!self.states.is_empty()).then(|| self.states.iter().map(|s| s.as_str()).collect()),
            queue: self.queue.as_deref(),
            kind: self.kind.as_deref(),
            tag: self.tag.as_deref(),
            id: self.id,
            args,
            args_path,
            before: self.before,
            after: self.after,
            max_id: self.max_id,
        }
    }
}

/// One page of a [`Client::jobs_search`], newest first, with the cursors of
/// the pages beside it.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct JobPage {
    /// The jobs, newest first.
    pub jobs: Vec<JobRow>,
    /// Pass as [`JobSearch::before`] for the next (older) page, if any.
    pub older: Option<i64>,
    /// Pass as [`JobSearch::after`] for the page before (newer), if any.
    pub newer: Option<i64>,
}

/// How many jobs a search matches, for a bulk action's confirmation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JobCount {
    /// Jobs matched, up to the cap.
    pub n: i64,
    /// True when there may be more than `n`.
    pub capped: bool,
    /// The highest job id when counted: pass it as [`JobSearch::max_id`] so
    /// the action leaves jobs enqueued since alone.
    pub max_id: i64,
}

/// What a bulk action does to each job it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BulkAction {
    /// [`Client::retry`]: finished jobs back to available, waiting ones now.
    Retry,
    /// [`Client::cancel`]: waiting jobs cancelled, running ones told to stop.
    Cancel,
    /// [`Client::jobs_discard`]: waiting jobs archived as discarded.
    Discard,
    /// [`Client::jobs_delete`]: jobs removed, hot (not running) or archived.
    Delete,
}

impl BulkAction {
    /// Its name: `retry`, `cancel`, `discard`, `delete`.
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Retry => "retry",
            BulkAction::Cancel => "cancel",
            BulkAction::Discard => "discard",
            BulkAction::Delete => "delete",
        }
    }
}

impl std::str::FromStr for BulkAction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "retry" => Ok(BulkAction::Retry),
            "cancel" => Ok(BulkAction::Cancel),
            "discard" => Ok(BulkAction::Discard),
            "delete" => Ok(BulkAction::Delete),
            _ => Err(Error::invalid(
                "action",
                format!("{} is not retry, cancel, discard or delete", validate::shorten(s)),
            )),
        }
    }
}

/// What a [`Client::jobs_bulk`] call did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct BulkReport {
    /// Jobs found matching.
    pub matched: u64,
    /// Jobs acted on (for a cancel, including running jobs told to stop).
    pub acted: u64,
    /// Jobs found but left as they were (a running job for discard or
    /// delete, a retry whose unique key is taken, a job that finished
    /// meanwhile).
    pub skipped: u64,
    /// True when it stopped at its limit with matching jobs left: call it
    /// again with the same search.
    pub more: bool,
    /// Statements it took (one per batch of at most [`BULK_BATCH`]).
    pub batches: u64,
}

/// A live worker process, from the workers registry.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its worker id.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// The queues it works, with each one's slots, by name.
    pub queues: Vec<(String, i64)>,
    /// Jobs it runs now (as of its last heartbeat).
    pub running: i32,
    /// The lease its claims take.
    pub lease: Duration,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub seen_at: DateTime<Utc>,
    /// When its entry expires unless it heartbeats again.
    pub expires_at: DateTime<Utc>,
    /// Whether it leads the maintenance now.
    pub leader: bool,
}

/// The queue depth the leader counted last: see [`Client::queue_depth`].
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct QueueDepth {
    /// When it was counted (`None`: never; no leader has run yet).
    pub counted_at: Option<DateTime<Utc>>,
    /// How long the count before it took.
    pub took: Option<Duration>,
    /// The database's clock when this was read.
    pub db_now: Option<DateTime<Utc>>,
    /// Counts by queue and hot state, with each queue's oldest available
    /// job's age at the time of the count.
    pub rows: Vec<QueueStats>,
}

impl QueueDepth {
    /// The leader's last count, read from `db` (a few small rows).
    pub(crate) async fn read(db: &crate::db::Db) -> Result<QueueDepth> {
        let conn = db.conn().await?;
        let rows = q::depth(conn.on()).await?;
        let mut out = QueueDepth::default();
        for r in &rows {
            out.counted_at = r.get(4);
            out.took = r.get::<_, Option<f64>>(5).map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0));
            out.db_now = r.get(6);
            let Some(queue) = r.get::<_, Option<String>>(0) else { continue };
            let state: String = r.get(1);
            let state: JobState = state.parse()?;
            out.rows.push(QueueStats {
                queue,
                state,
                count: r.get(2),
                oldest_available_secs: if state == JobState::Available { r.get(3) } else { None },
            });
        }
        Ok(out)
    }

    /// How old the count is, by the database's clock.
    pub fn age(&self) -> Option<Duration> {
        Some((self.db_now? - self.counted_at?).to_std().unwrap_or_default())
    }

    /// Jobs of `queue` in `state` (0 when none).
    pub fn count(&self, queue: &str, state: JobState) -> i64 {
        self.rows.iter().find(|r| r.queue == queue && r.state == state).map_or(0, |r| r.count)
    }
}

/// A queue as the dashboard lists it: see [`Client::queues_summary`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct QueueSummary {
    /// Its name.
    pub name: String,
    /// Whether claims from it are stopped.
    pub paused: bool,
    /// The slots live workers give it (0: no live worker serves it).
    pub slots: i64,
}

/// How an attempt ended, as the statistics count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StatsOutcome {
    /// Completed.
    Completed,
    /// Failed, and will run again.
    Retried,
    /// Failed for the last time, or discarded by its handler.
    Discarded,
    /// Cancelled.
    Cancelled,
    /// Snoozed by its handler.
    Snoozed,
}

impl StatsOutcome {
    /// Every outcome.
    pub const ALL: [StatsOutcome; 5] = [
        StatsOutcome::Completed,
        StatsOutcome::Retried,
        StatsOutcome::Discarded,
        StatsOutcome::Cancelled,
        StatsOutcome::Snoozed,
    ];

    /// Its name in the statistics tables.
    pub fn as_str(self) -> &'static str {
        match self {
            StatsOutcome::Completed => "completed",
            StatsOutcome::Retried => "retried",
            StatsOutcome::Discarded => "discarded",
            StatsOutcome::Cancelled => "cancelled",
            StatsOutcome::Snoozed => "snoozed",
        }
    }

    /// True for the outcomes of a failed attempt (retried, discarded).
    pub fn is_failure(self) -> bool {
        matches!(self, StatsOutcome::Retried | StatsOutcome::Discarded)
    }

    fn parse(s: &str) -> Option<StatsOutcome> {
        StatsOutcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// Buckets per doubling of the queue time in milliseconds: 4, so a
/// percentile read from the histogram is within 9% of the true one.
pub const QUEUE_TIME_BUCKETS_PER_DOUBLING: u32 = 4;
/// Buckets in all: 120, the last one holding everything from about 10 days.
pub const QUEUE_TIME_BUCKETS: usize = 120;

/// A histogram of queue times (from a job's `run_at` to its attempt's
/// start), in log buckets: bucket 0 holds times under a millisecond,
/// bucket `b ≥ 1` times from `2^((b-1)/4)` ms up to the next bucket's
/// start. Small to store and exact to add up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueTimeHistogram {
    buckets: Vec<i64>,
}

impl QueueTimeHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bucket of `d`.
    pub fn bucket_of(d: Duration) -> usize {
        let ms = d.as_secs_f64() * 1000.0;
        if ms < 1.0 {
            return 0;
        }
        let b = 1 + (ms.log2() * f64::from(QUEUE_TIME_BUCKETS_PER_DOUBLING)).floor() as usize;
        b.min(QUEUE_TIME_BUCKETS - 1)
    }

    /// The queue time a bucket stands for: the geometric middle of its range.
    pub fn bucket_value(b: usize) -> Duration {
        if b == 0 {
            return Duration::from_micros(500);
        }
        let exp = (b as f64 - 0.5) / f64::from(QUEUE_TIME_BUCKETS_PER_DOUBLING);
        Duration::from_secs_f64(2f64.powf(exp) / 1000.0)
    }

    /// Counts one queue time.
    pub fn record(&mut self, d: Duration) {
        let b = Self::bucket_of(d);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] += 1;
    }

    /// Adds another histogram's counts.
    pub fn merge(&mut self, other: &QueueTimeHistogram) {
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// Queue times counted.
    pub fn count(&self) -> i64 {
        self.buckets.iter().sum()
    }

    /// The queue time below which a fraction `p` (0 to 1) of them fell, as
    /// its bucket's middle; `None` when empty.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let want = ((p.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (b, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= want {
                return Some(Self::bucket_value(b));
            }
        }
        self.buckets.len().checked_sub(1).map(Self::bucket_value)
    }

    /// The counts, bucket by bucket (trailing empty buckets left out).
    pub fn buckets(&self) -> &[i64] {
        &self.buckets
    }

    pub(crate) fn from_buckets(mut buckets: Vec<i64>) -> Self {
        buckets.truncate(QUEUE_TIME_BUCKETS);
        QueueTimeHistogram { buckets }
    }

    /// As a `bigint[]` literal, for the statistics statement.
    pub(crate) fn to_literal(&self) -> String {
        let parts: Vec<String> = self.buckets.iter().map(i64::to_string).collect();
        format!("{{{}}}", parts.join(","))
    }
}

/// The resolution of [`Client::stats_since`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatsResolution {
    /// One point per minute (kept [`STATS_MINUTE_RETENTION`](crate::STATS_MINUTE_RETENTION)).
    Minute,
    /// One point per hour (kept [`STATS_HOUR_RETENTION`](crate::STATS_HOUR_RETENTION)).
    Hour,
}

/// Attempts that ended one way in one minute (or hour), of one queue and
/// kind, across every worker.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StatsPoint {
    /// The minute's (or hour's) start.
    pub at: DateTime<Utc>,
    /// The queue.
    pub queue: String,
    /// The kind (`other` for kinds past a worker's limit of distinct kinds).
    pub kind: String,
    /// How the attempts ended.
    pub outcome: StatsOutcome,
    /// How many.
    pub count: i64,
    /// Their queue times.
    pub queue_time: QueueTimeHistogram,
}

/// A periodic job as the dashboard shows it: see [`Client::periodic_entries`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PeriodicEntry {
    /// Its name.
    pub name: String,
    /// Its schedule, as registered (`cron <expr> <zone>`, `every <n>ms`).
    pub schedule: String,
    /// Its next run not yet enqueued.
    pub next_run_at: DateTime<Utc>,
    /// Its last run enqueued.
    pub last_run_at: Option<DateTime<Utc>>,
    /// Whether an operator paused it (its runs are skipped).
    pub paused: bool,
    /// The database's clock when this was read.
    pub db_now: DateTime<Utc>,
}

/// (at, queue, kind, outcome): what [`Client::stats_since`] adds up by.
type StatsKey = (DateTime<Utc>, String, String, StatsOutcome);

impl Client {
    /// One page of jobs matching `search`, hot and archived alike, newest
    /// first, with the cursors of the pages beside it. Each call is planned
    /// with its values, so every filter uses its index (a million archived
    /// jobs take a few milliseconds a page: docs/BENCHMARKS.md).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad queue, kind or tag, or a limit out
    /// of range.
    ///
    /// # Example: the discarded jobs of a queue, page by page
    ///
    /// ```no_run
    /// # async fn run(client: skiplock::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use skiplock::{JobSearch, JobState};
    /// let mut search = JobSearch::new().state(JobState::Discarded).queue("mail");
    /// loop {
    ///     let page = client.jobs_search(&search).await?;
    ///     for job in &page.jobs {
    ///         println!("{} {} {:?}", job.id, job.kind, job.errors.last());
    ///     }
    ///     let Some(older) = page.older else { break };
    ///     search = search.before(older);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn jobs_search(&self, search: &JobSearch) -> Result<JobPage> {
        search.check()?;
        let limit = search.limit.unwrap_or(SEARCH_LIMIT_DEFAULT);
        if !(1..=SEARCH_LIMIT_MAX).contains(&limit) {
            return Err(Error::invalid("limit", format!("{limit} is out of range 1 to {SEARCH_LIMIT_MAX}")));
        }
        let conn = self.db().conn().await?;
        let rows = q::jobs_search(conn.on(), &search.params(), limit as i32 + 1).await?;
        let mut jobs: Vec<JobRow> = rows.iter().map(JobRow::from_row).collect::<Result<_>>()?;
        let more = jobs.len() as i64 > limit;
        jobs.truncate(limit as usize);
        let (older, newer) = if search.after.is_some() {
            // Oldest first: the last is the newest of this page.
            let newer = if more { jobs.last().map(|j| j.id) } else { None };
            jobs.reverse();
            (jobs.last().map(|j| j.id), newer)
        } else {
            let older = if more { jobs.last().map(|j| j.id) } else { None };
            (older, search.before.and(jobs.first().map(|j| j.id)))
        };
        Ok(JobPage { jobs, older, newer })
    }

    /// How many jobs `search` matches (its cursors aside), up to `cap` in
    /// each of the hot table and the archive, with the highest job id now:
    /// what a bulk action shows before it runs.
    ///
    /// # Errors
    ///
    /// As [`Client::jobs_search`]; [`Error::InvalidInput`] for a `cap` out
    /// of 1 to 10,000,000.
    pub async fn jobs_count(&self, search: &JobSearch, cap: i64) -> Result<JobCount> {
        search.check()?;
        if !(1..=10_000_000).contains(&cap) {
            return Err(Error::invalid("cap", format!("{cap} is out of range 1 to 10000000")));
        }
        let conn = self.db().conn().await?;
        let max_id = match search.max_id {
            Some(id) => id,
            None => q::jobs_max_id(conn.on()).await?,
        };
        let mut p = search.params();
        p.max_id = Some(max_id);
        let n = q::jobs_count(conn.on(), &p, cap).await?;
        Ok(JobCount { n: n.min(cap), capped: n >= cap, max_id })
    }

    /// Acts on every job matching `search` (its cursors aside), at most
    /// `max` of them, newest first, in batches of [`BULK_BATCH`], each batch
    /// one statement and its own transaction. Set [`JobSearch::max_id`]
    /// (from [`Client::jobs_count`]) to leave jobs enqueued since the count
    /// alone; without it, the highest id at the start is used.
    ///
    /// # Errors
    ///
    /// As [`Client::jobs_search`]; database errors stop it after the batches
    /// already done.
    ///
    /// # Example: cancel every waiting job of a kind
    ///
    /// ```no_run
    /// # async fn run(client: skiplock::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use skiplock::{BulkAction, JobSearch, JobState};
    /// let search = JobSearch::new().kind("resize").state(JobState::Available);
    /// let count = client.jobs_count(&search, 100_000).await?;
    /// println!("cancelling {} jobs", count.n);
    /// let done = client.jobs_bulk(&search.max_id(count.max_id), BulkAction::Cancel, 100_000).await?;
    /// println!("cancelled {}", done.acted);
    /// # Ok(()) }
    /// ```
    pub async fn jobs_bulk(&self, search: &JobSearch, action: BulkAction, max: u64) -> Result<BulkReport> {
        search.check()?;
        let mut report = BulkReport::default();
        let max_id = match search.max_id {
            Some(id) => id,
            None => q::jobs_max_id(self.db().conn().await?.on()).await?,
        };
        let mut cursor: Option<i64> = None;
        while report.matched < max {
            let want = BULK_BATCH.min((max - report.matched) as i64);
            let mut p = search.params();
            p.max_id = Some(max_id);
            p.before = cursor;
            p.after = None;
            let rows = {
                let conn = self.db().conn().await?;
                q::jobs_search(conn.on(), &p, (want + 1) as i32).await?
            };
            let mut ids: Vec<i64> = rows.iter().map(|r| r.get::<_, i64>("id")).collect();
            let more = ids.len() as i64 > want;
            ids.truncate(want as usize);
            let Some(&lowest) = ids.last() else { break };
            cursor = Some(lowest);
            report.matched += ids.len() as u64;
            report.batches += 1;
            let acted = self.bulk_batch(action, &ids).await?;
            report.acted += acted;
            report.skipped += ids.len() as u64 - acted;
            if !more {
                break;
            }
            report.more = report.matched >= max;
        }
        Ok(report)
    }

    /// One batch of a bulk action; returns how many were acted on.
    async fn bulk_batch(&self, action: BulkAction, ids: &[i64]) -> Result<u64> {
        Ok(match action {
            BulkAction::Cancel => {
                self.cancel(ids).await?.iter().filter(|(_, r)| *r != CancelResult::NotFound).count() as u64
            }
            BulkAction::Discard => self.jobs_discard(ids).await?.len() as u64,
            BulkAction::Delete => self.jobs_delete(ids).await?.len() as u64,
            BulkAction::Retry => match self.retry(ids).await {
                Ok(done) => done.len() as u64,
                // One job's unique key is taken: the others one by one.
                Err(Error::Duplicate { .. }) => {
                    let mut n = 0;
                    for id in ids {
                        match self.retry(&[*id]).await {
                            Ok(done) => n += done.len() as u64,
                            Err(Error::Duplicate { .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    n
                }
                Err(e) => return Err(e),
            },
        })
    }

    /// Discards jobs by id: each unfinished job that is not running moves to
    /// the archive as discarded now (cancel a running one instead). Returns
    /// the ids discarded.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn jobs_discard(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let conn = self.db().conn().await?;
        q::jobs_discard(conn.on(), ids).await
    }

    /// Deletes jobs by id, unfinished (unless running: cancel those first)
    /// or archived; their unique keys are free again. Returns the ids
    /// deleted.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn jobs_delete(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let conn = self.db().conn().await?;
        q::jobs_delete(conn.on(), ids).await
    }

    /// The live worker processes (the workers registry), with what they run
    /// and who leads.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let conn = self.db().conn().await?;
        let rows = q::workers(conn.on()).await?;
        Ok(rows
            .iter()
            .map(|r| {
                let queues: serde_json::Value = r.get(3);
                let mut queues: Vec<(String, i64)> = queues
                    .as_object()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0))).collect())
                    .unwrap_or_default();
                queues.sort();
                WorkerInfo {
                    id: r.get(0),
                    host: r.get(1),
                    pid: r.get(2),
                    queues,
                    running: r.get(4),
                    lease: Duration::from_millis(u64::try_from(r.get::<_, i64>(5)).unwrap_or(0)),
                    started_at: r.get(6),
                    seen_at: r.get(7),
                    expires_at: r.get(8),
                    leader: r.get(9),
                }
            })
            .collect())
    }

    /// The queue depth as the leader last counted it (every
    /// [`STATS_DEPTH_INTERVAL`](crate::STATS_DEPTH_INTERVAL) or so): jobs by
    /// queue and hot state, and the age of each queue's oldest available
    /// job. Reads a few small rows, never the jobs table; see
    /// [`QueueDepth::age`] for how fresh it is. ([`Client::stats`] counts
    /// the tables themselves.)
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn queue_depth(&self) -> Result<QueueDepth> {
        QueueDepth::read(self.db()).await
    }

    /// Every queue to show, without reading the jobs table: those with
    /// settings, those the last depth count found jobs in, and those live
    /// workers serve, with their pause flag and the slots live workers give
    /// them.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn queues_summary(&self) -> Result<Vec<QueueSummary>> {
        let conn = self.db().conn().await?;
        let rows = q::queues(conn.on()).await?;
        Ok(rows.iter().map(|r| QueueSummary { name: r.get(0), paused: r.get(1), slots: r.get(2) }).collect())
    }

    /// Per-minute (or per-hour) statistics from `since` on, added up across
    /// workers: attempts by queue, kind and outcome, with their queue times.
    /// Minutes come from each worker's own rows (written every
    /// [`STATS_FLUSH_INTERVAL`](crate::STATS_FLUSH_INTERVAL)) and the
    /// leader's merged ones; hours from the leader's roll-up.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn stats_since(&self, since: DateTime<Utc>, resolution: StatsResolution) -> Result<Vec<StatsPoint>> {
        let conn = self.db().conn().await?;
        let rows = q::stats(conn.on(), since, resolution == StatsResolution::Hour).await?;
        let mut merged: BTreeMap<StatsKey, (i64, QueueTimeHistogram)> = BTreeMap::new();
        for r in &rows {
            let Some(outcome) = StatsOutcome::parse(r.get::<_, &str>(3)) else { continue };
            let key = (r.get(0), r.get::<_, String>(1), r.get::<_, String>(2), outcome);
            let e = merged.entry(key).or_default();
            e.0 += r.get::<_, i64>(4);
            e.1.merge(&QueueTimeHistogram::from_buckets(r.get(5)));
        }
        Ok(merged
            .into_iter()
            .map(|((at, queue, kind, outcome), (count, queue_time))| StatsPoint {
                at,
                queue,
                kind,
                outcome,
                count,
                queue_time,
            })
            .collect())
    }

    /// Every periodic job's row, with whether an operator paused it.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn periodic_entries(&self) -> Result<Vec<PeriodicEntry>> {
        let conn = self.db().conn().await?;
        let rows = q::periodic_list(conn.on()).await?;
        Ok(rows
            .iter()
            .map(|r| PeriodicEntry {
                name: r.get(0),
                schedule: r.get(1),
                next_run_at: r.get(2),
                last_run_at: r.get(3),
                paused: r.get(4),
                db_now: r.get(5),
            })
            .collect())
    }

    /// Pauses a periodic job: the leader moves its next run on as usual but
    /// enqueues nothing until it is resumed (no back-fill then). Returns
    /// false when no periodic job has this name.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn periodic_pause(&self, name: &str) -> Result<bool> {
        let conn = self.db().conn().await?;
        q::periodic_set_paused(conn.on(), name, true).await
    }

    /// Resumes a paused periodic job from its next run.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn periodic_resume(&self, name: &str) -> Result<bool> {
        let conn = self.db().conn().await?;
        q::periodic_set_paused(conn.on(), name, false).await
    }

    /// Asks the leader to enqueue a run of a periodic job now: its next run
    /// is brought forward to now, and the leader's next pass (within
    /// [`PERIODIC_CHECK_MAX`](crate::PERIODIC_CHECK_MAX)) enqueues it once,
    /// as any run, then goes on with the schedule. The leader must be a
    /// process that registers the job. Returns false when no periodic job
    /// has this name or it is paused.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn periodic_run_now(&self, name: &str) -> Result<bool> {
        let conn = self.db().conn().await?;
        q::periodic_run_now(conn.on(), name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_filters_read_what_operators_type() {
        let c = |v: serde_json::Value| ArgsFilter::Contains(v);
        assert_eq!(ArgsFilter::parse("to=ada@example.com").unwrap(), c(serde_json::json!({"to": "ada@example.com"})));
        assert_eq!(ArgsFilter::parse("n = 7").unwrap(), c(serde_json::json!({"n": 7})));
        assert_eq!(ArgsFilter::parse("a.b=true").unwrap(), c(serde_json::json!({"a": {"b": true}})));
        assert_eq!(ArgsFilter::parse(r#"{"x": [1]}"#).unwrap(), c(serde_json::json!({"x": [1]})));
        assert_eq!(ArgsFilter::parse("a.b").unwrap(), ArgsFilter::HasPath(vec!["a".into(), "b".into()]));
        assert!(ArgsFilter::parse("a..b=1").is_err());
        assert!(ArgsFilter::parse("  ").is_err());
        assert!(ArgsFilter::parse("{nope").is_err());
    }

    #[test]
    fn histogram_percentiles_are_within_a_bucket() {
        let mut h = QueueTimeHistogram::new();
        for ms in 1..=1000u64 {
            h.record(Duration::from_millis(ms));
        }
        let p50 = h.percentile(0.5).unwrap().as_secs_f64() * 1000.0;
        let p95 = h.percentile(0.95).unwrap().as_secs_f64() * 1000.0;
        assert!((p50 / 500.0 - 1.0).abs() < 0.1, "{p50}");
        assert!((p95 / 950.0 - 1.0).abs() < 0.1, "{p95}");
        let mut other = QueueTimeHistogram::new();
        other.record(Duration::from_micros(10));
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(QueueTimeHistogram::bucket_of(Duration::from_secs(100 * 86400)), QUEUE_TIME_BUCKETS - 1);
        assert_eq!(QueueTimeHistogram::new().percentile(0.5), None);
        assert_eq!(other.to_literal(), "{1}");
    }
}
