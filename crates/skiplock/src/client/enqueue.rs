//! What a caller hands to enqueue: a [`NewJob`] (kind, JSON args) and its
//! [`EnqueueOptions`], checked here and laid out as the column arrays of
//! `db/job/insert.sql`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::value::RawValue;

use super::facade::{Client, Executor};
use crate::db::columns::Columns;
use crate::db::insert::{insert, use_copy};
use crate::error::{Error, Result};
use crate::job::{Enqueued, Job, JobState};
use crate::validate;

/// Per-job settings for an enqueue. Everything is optional: unset fields
/// take the job type's defaults (see [`Job`]) or the library's.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// let opts = skiplock::EnqueueOptions::new()
///     .queue("mail")
///     .priority(1)
///     .delay(Duration::from_secs(60))
///     .unique_key("welcome:user-42");
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct EnqueueOptions {
    /// The queue (default: the job type's, else `default`).
    pub queue: Option<String>,
    /// Priority 0 (first) to 9 (last) (default 0).
    pub priority: Option<i16>,
    /// Run no earlier than this instant. Takes precedence over `delay`.
    pub run_at: Option<DateTime<Utc>>,
    /// Run no earlier than this long after the insert commits' statement
    /// starts (database clock).
    pub delay: Option<Duration>,
    /// Attempts before the job is discarded (default 20).
    pub max_attempts: Option<i32>,
    /// At most one unfinished job holds a key: enqueueing a second returns
    /// the first one's id and inserts nothing.
    pub unique_key: Option<String>,
    /// Derive the unique key from the job's kind and args (unless
    /// `unique_key` names one): `kind:<kind>:<md5 of the args>`, computed by
    /// the database from the stored `jsonb`, so key order and spacing in the
    /// JSON do not matter.
    pub unique_args: bool,
    /// The states in which a job holds its unique key (default: the
    /// unfinished ones). Every unfinished state must be included; add
    /// [`JobState::Completed`], [`JobState::Cancelled`] or
    /// [`JobState::Discarded`] to keep the key taken after the job finished
    /// (until its period ends, or the archive drops the job).
    pub unique_states: Option<Vec<JobState>>,
    /// Uniqueness per period: the start of the current period (UTC, database
    /// clock, aligned to the Unix epoch) becomes part of the key, so the next
    /// period takes a new key. Whole seconds, at least
    /// [`UNIQUE_PERIOD_MIN`](crate::UNIQUE_PERIOD_MIN).
    pub unique_period: Option<Duration>,
    /// Free-form labels, for filtering.
    pub tags: Vec<String>,
    /// Free-form JSON object kept with the job.
    pub meta: Option<serde_json::Value>,
    /// How long one attempt may run before it is stopped and failed
    /// (default: the worker's timeout for the kind). 1ms to about 24 days.
    pub timeout: Option<Duration>,
}

impl EnqueueOptions {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
    /// Sets the priority, 0 (first) to 9 (last).
    pub fn priority(mut self, priority: i16) -> Self {
        self.priority = Some(priority);
        self
    }
    /// Runs the job no earlier than `at`.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }
    /// Runs the job no earlier than `delay` from now (database clock).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }
    /// Sets the attempts allowed.
    pub fn max_attempts(mut self, n: i32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Sets the unique key.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
    /// Makes the job unique by its kind and args: while a job of the same
    /// kind with equal args holds the key, enqueueing returns that job.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use skiplock::{EnqueueOptions, JobState};
    /// // At most one report per account and hour, even once it completed.
    /// let opts = EnqueueOptions::new()
    ///     .unique_args()
    ///     .unique_period(Duration::from_secs(3600))
    ///     .unique_states(JobState::ALL);
    /// ```
    pub fn unique_args(mut self) -> Self {
        self.unique_args = true;
        self
    }
    /// Sets the states that hold the unique key: every unfinished state, plus
    /// any final states that should keep it taken after the job finished.
    pub fn unique_states(mut self, states: impl IntoIterator<Item = JobState>) -> Self {
        self.unique_states = Some(states.into_iter().collect());
        self
    }
    /// Scopes the unique key to a period (at most one job per period).
    pub fn unique_period(mut self, period: Duration) -> Self {
        self.unique_period = Some(period);
        self
    }
    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }
    /// Sets the metadata object.
    pub fn meta(mut self, meta: serde_json::Value) -> Self {
        self.meta = Some(meta);
        self
    }
    /// Sets this job's own timeout per attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// A job to insert, with its kind and args already in JSON form. Build one
/// from a typed [`Job`] with [`NewJob::typed`], or from any kind and JSON
/// with [`NewJob::from_json`] (the CLI and other languages do).
#[derive(Debug, Clone)]
pub struct NewJob {
    pub(crate) kind: String,
    pub(crate) args: Box<RawValue>,
    pub(crate) opts: EnqueueOptions,
    pub(crate) defaults: Defaults,
}

/// A job type's defaults, carried until the options are resolved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    queue: &'static str,
    priority: i16,
    max_attempts: i32,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            queue: validate::QUEUE_DEFAULT,
            priority: validate::PRIORITY_DEFAULT,
            max_attempts: validate::MAX_ATTEMPTS_DEFAULT,
        }
    }
}

impl NewJob {
    /// A typed job with the type's defaults.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] when `job` cannot be serialized.
    pub fn typed<J: Job>(job: &J, opts: EnqueueOptions) -> Result<NewJob> {
        let args =
            serde_json::value::to_raw_value(job).map_err(|source| Error::Json { kind: J::KIND.into(), source })?;
        Ok(NewJob {
            kind: J::KIND.to_owned(),
            args,
            opts,
            defaults: Defaults { queue: J::QUEUE, priority: J::PRIORITY, max_attempts: J::MAX_ATTEMPTS },
        })
    }

    /// A job of any `kind` whose args are the serde form of `args`.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] when `args` cannot be serialized.
    pub fn new(kind: impl Into<String>, args: &impl Serialize, opts: EnqueueOptions) -> Result<NewJob> {
        let kind = kind.into();
        let args =
            serde_json::value::to_raw_value(args).map_err(|source| Error::Json { kind: kind.clone(), source })?;
        Ok(NewJob { kind, args, opts, defaults: Defaults::default() })
    }

    /// A job of any `kind` whose args are JSON text.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for `args` when the text is not JSON.
    pub fn from_json(kind: impl Into<String>, args: &str, opts: EnqueueOptions) -> Result<NewJob> {
        let args = RawValue::from_string(args.to_owned())
            .map_err(|e| Error::invalid("args", format!("is not valid JSON: {e}")))?;
        Ok(NewJob { kind: kind.into(), args, opts, defaults: Defaults::default() })
    }

    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The job's args as JSON text.
    pub fn args(&self) -> &str {
        self.args.get()
    }

    /// The job's options.
    pub fn options(&self) -> &EnqueueOptions {
        &self.opts
    }

    /// The queue the job goes to: its options' queue, else its type's
    /// [`Job::QUEUE`], else [`QUEUE_DEFAULT`](crate::QUEUE_DEFAULT).
    pub fn queue(&self) -> &str {
        self.opts.queue.as_deref().unwrap_or(self.defaults.queue)
    }

    /// Checks every field; `at` prefixes field names (`jobs[3].`) in bulk calls.
    pub(crate) fn check(&self, at: &str, args_max: usize) -> Result<()> {
        let f = |name: &str| format!("{at}{name}");
        validate::kind(&f("kind"), &self.kind)?;
        validate::queue(&f("queue"), self.queue())?;
        validate::json(&f("args"), self.args.get(), args_max)?;
        validate::priority(&f("priority"), self.priority())?;
        validate::max_attempts(&f("max_attempts"), self.max_attempts())?;
        if let Some(at_time) = self.opts.run_at {
            validate::run_at(&f("run_at"), at_time)?;
        } else if let Some(d) = self.opts.delay {
            validate::delay(&f("delay"), d)?;
        }
        if let Some(key) = &self.opts.unique_key {
            validate::text(&f("unique_key"), key, validate::UNIQUE_KEY_MAX)?;
        }
        let keyed = self.opts.unique_key.is_some() || self.opts.unique_args;
        if let Some(states) = &self.opts.unique_states {
            if !keyed {
                return Err(Error::invalid(f("unique_states"), "needs unique_key or unique_args"));
            }
            validate::unique_states(&f("unique_states"), states)?;
        }
        if let Some(period) = self.opts.unique_period {
            if !keyed {
                return Err(Error::invalid(f("unique_period"), "needs unique_key or unique_args"));
            }
            validate::unique_period(&f("unique_period"), period)?;
        }
        if self.opts.tags.len() > validate::TAGS_MAX {
            return Err(Error::invalid(
                f("tags"),
                format!("has {} tags, the limit is {}", self.opts.tags.len(), validate::TAGS_MAX),
            ));
        }
        for (i, tag) in self.opts.tags.iter().enumerate() {
            validate::text(&f(&format!("tags[{i}]")), tag, validate::TAG_MAX)?;
        }
        if let Some(t) = self.opts.timeout {
            validate::timeout(&f("timeout"), t)?;
        }
        if let Some(meta) = &self.opts.meta {
            if !meta.is_object() {
                return Err(Error::invalid(f("meta"), "must be a JSON object"));
            }
            validate::json(&f("meta"), &meta.to_string(), validate::META_MAX_BYTES)?;
        }
        Ok(())
    }

    fn priority(&self) -> i16 {
        self.opts.priority.unwrap_or(self.defaults.priority)
    }
    fn max_attempts(&self) -> i32 {
        self.opts.max_attempts.unwrap_or(self.defaults.max_attempts)
    }
}

/// Most jobs one insert statement carries. Bigger batches are split into
/// statements of this size inside one transaction: the planner's cost for a
/// statement grows with its rows, and past `jit_above_cost` PostgreSQL would
/// spend more time compiling it than running it.
pub(crate) const INSERT_CHUNK: usize = 5000;

/// Validates `jobs` and lays them out in statements of at most
/// [`INSERT_CHUNK`] rows. Nothing is sent unless every job is valid.
pub(crate) fn chunks(jobs: Vec<NewJob>, args_max: usize) -> Result<Vec<Columns>> {
    let total = jobs.len();
    let mut out = Vec::with_capacity(total.div_ceil(INSERT_CHUNK));
    let mut it = jobs.into_iter();
    let mut offset = 0;
    while offset < total {
        let chunk: Vec<NewJob> = it.by_ref().take(INSERT_CHUNK).collect();
        let n = chunk.len();
        out.push(columns(chunk, offset, total, args_max)?);
        offset += n;
    }
    Ok(out)
}

/// Validates and lays out `jobs`, the ones from `offset` of `total`.
/// Single-job calls name fields plainly; bulk calls prefix them with
/// `jobs[i].`.
fn columns(jobs: Vec<NewJob>, offset: usize, total: usize, args_max: usize) -> Result<Columns> {
    let mut c = Columns::default();
    for (i, job) in jobs.into_iter().enumerate() {
        let at = if total == 1 { String::new() } else { format!("jobs[{}].", offset + i) };
        job.check(&at, args_max)?;
        c.queue.push(job.queue().to_owned());
        c.priority.push(job.priority());
        c.max_attempts.push(job.max_attempts());
        c.run_at.push(job.opts.run_at);
        c.delay_ms.push(job.opts.delay.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)));
        c.unique_key.push(job.opts.unique_key);
        c.tags.push(job.opts.tags);
        #[cfg(feature = "opentelemetry")]
        let meta = crate::trace::inject(job.opts.meta);
        #[cfg(not(feature = "opentelemetry"))]
        let meta = job.opts.meta;
        c.meta.push(meta.map_or_else(|| "{}".to_owned(), |m| m.to_string()));
        c.timeout_ms.push(job.opts.timeout.map(|t| i32::try_from(t.as_millis()).unwrap_or(i32::MAX)));
        c.unique_args.push(job.opts.unique_args);
        c.unique_period_s.push(job.opts.unique_period.map(|p| i64::try_from(p.as_secs()).unwrap_or(i64::MAX)));
        c.unique_final.push(job.opts.unique_states.as_deref().and_then(final_states_literal));
        c.kind.push(job.kind);
        c.args.push(job.args);
    }
    Ok(c)
}

/// The final states among `states` as a Postgres array literal
/// (`{completed,discarded}`), or `None` if there are none (the common case,
/// held by the hot table's index alone).
fn final_states_literal(states: &[JobState]) -> Option<String> {
    let mut finals: Vec<&str> = states.iter().filter(|s| s.is_final()).map(|s| s.as_str()).collect();
    finals.sort_unstable();
    finals.dedup();
    (!finals.is_empty()).then(|| format!("{{{}}}", finals.join(",")))
}

impl Client {
    /// Sends `job` (one valid job without a unique key) in the next
    /// combined statement that has room (`coalesce.rs`), and waits for
    /// its result.
    async fn enqueue_combined(&self, job: Columns) -> Result<Enqueued> {
        let (result, start) = self.inner.coalescer.submit(job);
        if start {
            let client = self.clone();
            tokio::spawn(async move {
                let insert = |cols: Columns| {
                    let client = client.clone();
                    async move {
                        let r = client.insert_combined(&cols).await;
                        (cols, r)
                    }
                };
                client.inner.coalescer.send_waiting(insert).await;
            });
        }
        result.await.unwrap_or_else(|_| {
            Err(Error::Pool("the task sending this enqueue stopped (the runtime is shutting down)".into()))
        })
    }

    /// One statement for the jobs of `cols` (none with a unique key), on a
    /// pooled connection.
    async fn insert_combined(&self, cols: &Columns) -> Result<Vec<Enqueued>> {
        let db = self.db();
        let conn = db.conn().await?;
        // No `pg`: never a COPY, whose statements would need a transaction.
        insert(db, conn.on(), None, cols, &|c| self.wake(c)).await
    }

    /// Enqueues one typed job, committed when the call returns.
    ///
    /// Concurrent calls of one client share statements and commits (group
    /// commit; see [`ClientBuilder::combine_enqueues`](crate::ClientBuilder::combine_enqueues)):
    /// a call that comes while the client's statements are in flight goes
    /// with the next one. Each job's result and error are still its own.
    /// Jobs with a unique key are always sent alone. A call whose future is
    /// dropped before it returns may still have its job enqueued, as with
    /// any statement already sent.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the field for bad options or args;
    /// database errors as [`Error::Transient`] or [`Error::Database`].
    pub async fn enqueue<J: Job>(&self, job: &J, opts: EnqueueOptions) -> Result<Enqueued> {
        self.enqueue_job(NewJob::typed(job, opts)?).await
    }

    /// Enqueues one job of any kind, as [`Client::enqueue`] does.
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue`].
    pub async fn enqueue_job(&self, job: NewJob) -> Result<Enqueued> {
        let unique = job.opts.unique_key.is_some() || job.opts.unique_args;
        if !self.inner.combine || unique {
            let mut out = self.enqueue_many(vec![job]).await?;
            return Ok(out.pop().expect("one result per job"));
        }
        let cols = columns(vec![job], 0, 1, self.inner.args_max_bytes)?;
        self.enqueue_combined(cols).await
    }

    /// Enqueues many jobs in one statement and one transaction: all or none.
    /// Jobs whose unique key is taken come back with `inserted: false` and
    /// the holder's id. Workers of each queue get one wake-up.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first bad job (`jobs[i].field`);
    /// nothing is inserted then.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let chunks = chunks(jobs, self.inner.args_max_bytes)?;
        let db = self.db();
        match chunks.as_slice() {
            [] => Ok(Vec::new()),
            // One statement is atomic by itself.
            [one] if !use_copy(one) => {
                let conn = db.conn().await?;
                insert(db, conn.on(), Some(conn.client()), one, &|c| self.wake(c)).await
            }
            all => {
                // Several statements (or a COPY and its wake-ups): one
                // transaction, all or none.
                let mut conn = db.raw().await?;
                let tx = conn.transaction().await?;
                let mut out = Vec::new();
                for cols in all {
                    out.extend(insert(db, db.on(&tx), Some(tx.client()), cols, &|c| self.wake(c)).await?);
                }
                tx.commit().await?;
                Ok(out)
            }
        }
    }

    /// Enqueues a typed job inside the caller's open transaction: the job
    /// exists, and its wake-up is sent, only if that transaction commits.
    ///
    /// Works with a `tokio_postgres::Transaction`, a `deadpool_postgres`
    /// transaction, or a plain client (autocommit). For `sqlx`, the same
    /// call is `enqueue_sqlx_tx` (feature `sqlx`).
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue`]. An error leaves the caller's transaction
    /// aborted, as any failed statement does.
    ///
    /// # Example: a job that commits with the row it is about
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Welcome { user_id: i64 }
    /// # impl skiplock::Job for Welcome { const KIND: &'static str = "welcome"; }
    /// # async fn run(client: skiplock::Client, mut pg: tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let tx = pg.transaction().await?;
    /// let row = tx.query_one("INSERT INTO users (name) VALUES ($1) RETURNING id", &[&"ada"]).await?;
    /// client.enqueue_tx(&tx, &Welcome { user_id: row.get(0) }, Default::default()).await?;
    /// tx.commit().await?; // both or neither
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_tx<J: Job>(&self, tx: &impl Executor, job: &J, opts: EnqueueOptions) -> Result<Enqueued> {
        let mut out = self.enqueue_many_tx(tx, vec![NewJob::typed(job, opts)?]).await?;
        Ok(out.pop().expect("one result per job"))
    }

    /// Enqueues many jobs inside the caller's open transaction.
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue_many`].
    pub async fn enqueue_many_tx(&self, tx: &impl Executor, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let db = self.db();
        let mut out = Vec::new();
        for cols in chunks(jobs, self.inner.args_max_bytes)? {
            out.extend(insert(db, db.on(tx.as_exec()), Some(tx.pg_client()), &cols, &|c| self.wake(c)).await?);
        }
        Ok(out)
    }

    /// The queues of `cols` to wake in its statement, as the rate limit
    /// decides; the trailing wake-ups it holds back are scheduled.
    pub(crate) fn wake(&self, cols: &Columns) -> Vec<String> {
        let (now, later) = self.inner.wakeups.decide(cols.due_queues());
        self.wake_later(later);
        now
    }

    /// Sends the trailing wake-ups the rate limit held back, each when its
    /// queue's interval ends. (Inside a caller's transaction that has not
    /// committed by then, a worker woken early finds nothing and falls back
    /// to polling for that job.)
    fn wake_later(&self, later: Vec<(String, std::time::Instant)>) {
        for (queue, due) in later {
            let client = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(due.into()).await;
                let sent = async {
                    let conn = client.db().conn().await?;
                    crate::db::job::notify(conn.on(), std::slice::from_ref(&queue)).await
                }
                .await;
                client.inner.wakeups.trailing_sent(&queue);
                if let Err(e) = sent {
                    tracing::debug!(%queue, error = %e, "trailing wake-up not sent; workers will poll");
                }
            });
        }
    }
}
