//! The job lifecycle as batch calls, each one statement and one round trip:
//! claim, finish (complete, fail, snooze, cancel, discard, release),
//! heartbeat, rescue and promote. Every write made on behalf of a running
//! attempt carries its [`Lease`] and is fenced by it.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::facade::Client;
use crate::db::job::{self as q, Beat, FinishColumns, JobClaimParams, Written};
use crate::error::{Error, Result};
use crate::job::{ClaimedJob, Finish, JobState, Lease, Outcome};
use crate::validate;

/// What a batch of lease-fenced writes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishReport {
    /// Jobs whose lease still held, with the state each reached.
    pub applied: Vec<(i64, JobState)>,
    /// Jobs whose lease no longer held (expired and rescued, reclaimed,
    /// cancelled by an operator): nothing was written for them.
    pub stale: Vec<i64>,
}

impl From<Written> for FinishReport {
    fn from(w: Written) -> Self {
        FinishReport {
            applied: w.applied.into_iter().map(|(l, s)| (l.id, s)).collect(),
            stale: w.stale.into_iter().map(|l| l.id).collect(),
        }
    }
}

impl From<Beat> for HeartbeatReport {
    fn from(b: Beat) -> Self {
        let ids = |v: Vec<Lease>| v.into_iter().map(|l| l.id).collect();
        HeartbeatReport { extended: ids(b.extended), cancel_requested: ids(b.cancel_requested), lost: ids(b.lost) }
    }
}

/// What a heartbeat did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeartbeatReport {
    /// Leases extended.
    pub extended: Vec<i64>,
    /// Of those, jobs an operator asked to cancel.
    pub cancel_requested: Vec<i64>,
    /// Leases that no longer held: stop those handlers.
    pub lost: Vec<i64>,
}

/// What a rescue pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RescueReport {
    /// Jobs taken back from dead workers, with the state each went to
    /// (available, discarded when out of attempts, or cancelled).
    pub rescued: Vec<(i64, JobState)>,
}

/// What a scheduler pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PromoteReport {
    /// Jobs made available, per queue.
    pub per_queue: Vec<(String, i64)>,
    /// When the next waiting job falls due, if any.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The database's clock at the time (compare `next_run_at` with this,
    /// not with the local clock).
    pub db_now: Option<DateTime<Utc>>,
}

impl PromoteReport {
    /// Jobs made available in all.
    pub fn total(&self) -> i64 {
        self.per_queue.iter().map(|(_, n)| n).sum()
    }
}

fn millis(field: &str, d: Duration) -> Result<i64> {
    i64::try_from(d.as_millis()).map_err(|_| Error::invalid(field, "is too long"))
}

/// A lease of at least a millisecond, in milliseconds.
fn lease_ms(lease: Duration) -> Result<i64> {
    let ms = millis("lease", lease)?;
    if ms < 1 {
        return Err(Error::invalid("lease", "must be at least 1ms"));
    }
    Ok(ms)
}

impl Client {
    /// Claims up to `limit` available jobs of `queue`, in (priority, run_at,
    /// id) order, for the worker named `worker`, each leased for `lease`.
    /// Concurrent claimers never get the same job (`FOR UPDATE SKIP
    /// LOCKED`). A paused queue yields nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a bad queue name, a zero or negative
    /// `limit`, or a lease under one millisecond.
    ///
    /// # Example: claim and complete by hand
    ///
    /// ```no_run
    /// # async fn run(client: skiplock::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// let jobs = client.claim("default", 100, Duration::from_secs(30), "worker-1").await?;
    /// let leases: Vec<_> = jobs.iter().map(|j| j.lease).collect();
    /// let report = client.complete(&leases).await?;
    /// assert!(report.stale.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn claim(&self, queue: &str, limit: i64, lease: Duration, worker: &str) -> Result<Vec<ClaimedJob>> {
        validate::queue("queue", queue)?;
        if limit < 1 {
            return Err(Error::invalid("limit", format!("{limit} must be at least 1")));
        }
        let lease_ms = lease_ms(lease)?;
        validate::text("worker", worker, 255)?;
        let conn = self.db().conn().await?;
        let p = JobClaimParams { queue, limit, lease_ms, worker };
        Ok(q::finish_claim(conn.on(), &FinishColumns::default(), &p).await?.1)
    }

    /// Records many attempts' outcomes in one statement, each fenced by its
    /// lease: a stale lease changes nothing and is reported in
    /// [`FinishReport::stale`], never as an error.
    ///
    /// # Errors
    ///
    /// Database errors only; [`Error::is_transient`] tells whether to retry
    /// (retrying is safe: an outcome already written makes its lease stale).
    pub async fn finish(&self, items: &[Finish]) -> Result<FinishReport> {
        if items.is_empty() {
            return Ok(FinishReport::default());
        }
        let db = self.db();
        let cols = FinishColumns::of(items.iter().map(|f| (f.lease, &f.outcome)), true, &|t| db.redact(t));
        let conn = db.conn().await?;
        Ok(q::finish_claim(conn.on(), &cols, &JobClaimParams::NONE).await?.0.into())
    }

    /// Completes jobs: [`Client::finish`] with [`Outcome::Completed`].
    ///
    /// # Errors
    ///
    /// As [`Client::finish`].
    pub async fn complete(&self, leases: &[Lease]) -> Result<FinishReport> {
        self.finish_all(leases, |_| Outcome::Completed).await
    }

    /// Fails attempts: each job is retried after its backoff, or discarded
    /// when its attempts are used up, and `error` joins its history.
    ///
    /// # Errors
    ///
    /// As [`Client::finish`].
    pub async fn fail(&self, failures: &[(Lease, String, Duration)]) -> Result<FinishReport> {
        let items: Vec<Finish> = failures
            .iter()
            .map(|(lease, error, retry_in)| Finish {
                lease: *lease,
                outcome: Outcome::Failed { error: error.clone(), retry_in: *retry_in },
            })
            .collect();
        self.finish(&items).await
    }

    /// Snoozes jobs: back to scheduled for `delay` (available at once if
    /// zero), without using up an attempt.
    ///
    /// # Errors
    ///
    /// As [`Client::finish`].
    pub async fn snooze(&self, leases: &[Lease], delay: Duration) -> Result<FinishReport> {
        self.finish_all(leases, |_| Outcome::Snoozed(delay)).await
    }

    /// Releases jobs back to available without using up an attempt (worker
    /// shutdown).
    ///
    /// # Errors
    ///
    /// As [`Client::finish`].
    pub async fn release(&self, leases: &[Lease]) -> Result<FinishReport> {
        self.finish_all(leases, |_| Outcome::Released).await
    }

    async fn finish_all(&self, leases: &[Lease], outcome: impl Fn(&Lease) -> Outcome) -> Result<FinishReport> {
        let items: Vec<Finish> = leases.iter().map(|l| Finish { lease: *l, outcome: outcome(l) }).collect();
        self.finish(&items).await
    }

    /// Extends the leases of running jobs by `lease` from now (database
    /// clock), in one statement.
    ///
    /// # Errors
    ///
    /// Database errors; lost leases are reported in the result, not as
    /// errors. [`Error::InvalidInput`] for a `lease` under one millisecond.
    pub async fn heartbeat(&self, leases: &[Lease], lease: Duration) -> Result<HeartbeatReport> {
        let lease_ms = lease_ms(lease)?;
        if leases.is_empty() {
            return Ok(HeartbeatReport::default());
        }
        let conn = self.db().conn().await?;
        Ok(q::heartbeat(conn.on(), leases, lease_ms, &[], None).await?.into())
    }

    /// Takes back up to `limit` running jobs whose lease expired: to
    /// available, or discarded when out of attempts, or cancelled when an
    /// operator asked. Safe to run from many processes at once.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn rescue(&self, limit: i64) -> Result<RescueReport> {
        let conn = self.db().conn().await?;
        Ok(RescueReport { rescued: q::rescue(conn.on(), limit.max(1)).await? })
    }

    /// Makes up to `limit` scheduled and retryable jobs whose time has come
    /// available, and wakes their queues.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn promote(&self, limit: i64) -> Result<PromoteReport> {
        let conn = self.db().conn().await?;
        Ok(q::promote(conn.on(), limit.max(1)).await?.into())
    }
}

impl From<q::Promoted> for PromoteReport {
    fn from(p: q::Promoted) -> Self {
        PromoteReport { per_queue: p.per_queue, next_run_at: p.next_run_at, db_now: p.db_now }
    }
}
