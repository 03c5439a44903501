//! The job lifecycle as batch calls, each one statement and one round trip:
//! claim, finish (complete, fail, snooze, cancel, discard, release),
//! heartbeat, rescue and promote. Every write made on behalf of a running
//! attempt carries its [`Lease`] and is fenced by it.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Client;
use crate::db::job::{self as q, FinishColumns, JobClaimParams};
use crate::error::{Error, Result};
use crate::job::{ClaimedJob, JobState, Lease};
use crate::validate;

/// Longest error text kept per attempt, in bytes; longer ones keep their end
/// (where a stack trace or stderr says what finally went wrong).
pub const ERROR_TEXT_MAX: usize = 8 << 10;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// It succeeded: the job is completed.
    Completed,
    /// It failed: the job is retried after `retry_in`, or discarded once its
    /// attempts are used up. `error` joins the job's history.
    Failed {
        /// What went wrong.
        error: String,
        /// Backoff before the next attempt.
        retry_in: Duration,
    },
    /// Try again after this long without using up an attempt.
    Snoozed(Duration),
    /// Stop for good as cancelled; the reason, if any, joins the history.
    Cancelled(Option<String>),
    /// Stop for good as discarded; the reason joins the history.
    Discarded(String),
    /// Give the job back untouched (available now, attempt not counted):
    /// what a worker does with jobs it could not finish before shutting down.
    Released,
}

/// An attempt's outcome, with the lease it ran under.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    /// The claim's lease.
    pub lease: Lease,
    /// How it ended.
    pub outcome: Outcome,
}

/// What a batch of lease-fenced writes did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishReport {
    /// Jobs whose lease still held, with the state each reached.
    pub applied: Vec<(i64, JobState)>,
    /// Jobs whose lease no longer held (expired and rescued, reclaimed,
    /// cancelled by an operator): nothing was written for them.
    pub stale: Vec<i64>,
}

/// What a batch of lease-fenced writes did, by lease: two attempts of one
/// job (a stale one and the current one) can be in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Leases that held, with the state each job reached.
    pub applied: Vec<(Lease, JobState)>,
    /// Leases that no longer held.
    pub stale: Vec<Lease>,
}

impl From<Written> for FinishReport {
    fn from(w: Written) -> Self {
        FinishReport {
            applied: w.applied.into_iter().map(|(l, s)| (l.id, s)).collect(),
            stale: w.stale.into_iter().map(|l| l.id).collect(),
        }
    }
}

/// What a heartbeat did, by lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Beat {
    /// Leases extended.
    pub extended: Vec<Lease>,
    /// Of those, jobs an operator asked to cancel.
    pub cancel_requested: Vec<Lease>,
    /// Leases that no longer held.
    pub lost: Vec<Lease>,
    /// Whether the worker's registry entry was kept alive.
    pub registered: bool,
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

/// Trims error text to [`ERROR_TEXT_MAX`] (keeping the end) and replaces NUL,
/// which PostgreSQL text cannot hold.
pub(crate) fn error_text(s: &str) -> String {
    let s = if s.len() > ERROR_TEXT_MAX {
        let mut cut = s.len() - ERROR_TEXT_MAX;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        format!("…{}", &s[cut..])
    } else {
        s.to_owned()
    };
    s.replace('\0', "\u{fffd}")
}

/// Outcomes as the arrays of `finish_claim.sql`.
/// Error texts are stored trimmed and without credentials (`redact`).
fn finish_columns(items: &[Finish], keep_completed: bool, redact: impl Fn(&str) -> String) -> Result<FinishColumns> {
    let mut c = FinishColumns { keep_completed, ..FinishColumns::default() };
    let text = |s: &str| error_text(&redact(s));
    for f in items {
        let (outcome, error, delay) = match &f.outcome {
            Outcome::Completed => ("completed", None, Duration::ZERO),
            Outcome::Failed { error, retry_in } => ("failed", Some(text(error)), *retry_in),
            Outcome::Snoozed(d) => ("snoozed", None, *d),
            Outcome::Cancelled(reason) => ("cancelled", reason.as_deref().map(text), Duration::ZERO),
            Outcome::Discarded(reason) => ("discarded", Some(text(reason)), Duration::ZERO),
            Outcome::Released => ("released", None, Duration::ZERO),
        };
        c.id.push(f.lease.id);
        c.token.push(f.lease.token);
        c.outcome.push(outcome);
        c.error.push(error);
        // Waits past the schedule horizon are a bug upstream; cap them rather
        // than refuse the outcome.
        c.delay_ms.push(millis("delay", delay.min(validate::SCHEDULE_HORIZON))?);
    }
    Ok(c)
}

/// Splits `items` into those written (`applied`) and the stale rest.
fn written(items: &[Finish], applied: Vec<(Lease, JobState)>) -> Written {
    let held: HashSet<Lease> = applied.iter().map(|(l, _)| *l).collect();
    let stale = items.iter().map(|f| f.lease).filter(|l| !held.contains(l)).collect();
    Written { applied, stale }
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
        Ok(self.finish_and_claim(&[], true, queue, limit, lease, worker).await?.1)
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
        Ok(self.finish_with(items, true).await?.into())
    }

    /// [`Client::finish`], deleting completed jobs instead of archiving
    /// them when `keep_completed` is false.
    pub(crate) async fn finish_with(&self, items: &[Finish], keep_completed: bool) -> Result<Written> {
        if items.is_empty() {
            return Ok(Written::default());
        }
        let db = self.db().await?;
        let cols = finish_columns(items, keep_completed, |t| self.redact(t))?;
        let (applied, _) =
            q::finish_claim(&db, self.stmts(), &cols, &JobClaimParams::NONE).await.map_err(|e| self.pg(e))?;
        Ok(written(items, applied))
    }

    /// Records `items` and claims up to `limit` jobs of `queue`, in one
    /// statement and one commit: what the worker runtime's producers do.
    ///
    /// # Errors
    ///
    /// As [`Client::claim`]; on an error nothing was written or claimed.
    pub(crate) async fn finish_and_claim(
        &self,
        items: &[Finish],
        keep_completed: bool,
        queue: &str,
        limit: i64,
        lease: Duration,
        worker: &str,
    ) -> Result<(Written, Vec<ClaimedJob>)> {
        validate::queue("queue", queue)?;
        if limit < 1 {
            return Err(Error::invalid("limit", format!("{limit} must be at least 1")));
        }
        let lease_ms = millis("lease", lease)?;
        if lease_ms < 1 {
            return Err(Error::invalid("lease", "must be at least 1ms"));
        }
        validate::text("worker", worker, 255)?;
        let db = self.db().await?;
        let (applied, claimed) = q::finish_claim(
            &db,
            self.stmts(),
            &finish_columns(items, keep_completed, |t| self.redact(t))?,
            &JobClaimParams { queue, limit, lease_ms, worker },
        )
        .await
        .map_err(|e| self.pg(e))?;
        Ok((written(items, applied), claimed))
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
        Ok(self.heartbeat_with_progress(leases, lease, &[], None).await?.into())
    }

    /// [`Client::heartbeat`] that also stores each job's progress (JSON text,
    /// or `None` to leave it) in `meta.progress`, and keeps `worker`'s
    /// registry entry alive.
    pub(crate) async fn heartbeat_with_progress(
        &self,
        leases: &[Lease],
        lease: Duration,
        progress: &[Option<String>],
        worker: Option<q::Registered<'_>>,
    ) -> Result<Beat> {
        let lease_ms = millis("lease", lease)?;
        if lease_ms < 1 {
            return Err(Error::invalid("lease", "must be at least 1ms"));
        }
        if leases.is_empty() && worker.is_none() {
            return Ok(Beat::default());
        }
        let db = self.db().await?;
        let beaten =
            q::heartbeat(&db, self.stmts(), leases, lease_ms, progress, worker).await.map_err(|e| self.pg(e))?;
        let kept: HashSet<Lease> = beaten.held.iter().map(|(l, _)| *l).collect();
        Ok(Beat {
            extended: beaten.held.iter().map(|(l, _)| *l).collect(),
            cancel_requested: beaten.held.iter().filter(|(_, c)| *c).map(|(l, _)| *l).collect(),
            lost: leases.iter().copied().filter(|l| !kept.contains(l)).collect(),
            registered: beaten.registered,
        })
    }

    /// Takes worker id `p.id` for this process; false when a live process
    /// holds it.
    pub(crate) async fn worker_register(&self, p: &crate::db::worker::WorkerRegisterParams<'_>) -> Result<bool> {
        let db = self.db().await?;
        crate::db::worker::register(&db, self.stmts(), p).await.map_err(|e| self.pg(e))
    }

    /// The live process holding worker id `id`, if any.
    pub(crate) async fn worker_holder(&self, id: &str) -> Result<Option<crate::db::worker::Holder>> {
        let db = self.db().await?;
        crate::db::worker::holder(&db, self.stmts(), id).await.map_err(|e| self.pg(e))
    }

    /// Gives up worker id `id` if `instance` holds it.
    pub(crate) async fn worker_deregister(&self, id: &str, instance: i64) -> Result<bool> {
        let db = self.db().await?;
        crate::db::worker::deregister(&db, self.stmts(), id, instance).await.map_err(|e| self.pg(e))
    }

    /// Gives back the live jobs leased to `worker` that are not among
    /// `known` (every lease it holds), unstarted and without using an
    /// attempt: what a worker does after a claim whose answer it lost.
    pub(crate) async fn release_unknown(&self, worker: &str, known: &[Lease]) -> Result<Vec<i64>> {
        let db = self.db().await?;
        q::release_unknown(&db, self.stmts(), worker, known).await.map_err(|e| self.pg(e))
    }

    /// Takes back up to `limit` running jobs whose lease expired: to
    /// available, or discarded when out of attempts, or cancelled when an
    /// operator asked. Safe to run from many processes at once.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn rescue(&self, limit: i64) -> Result<RescueReport> {
        let db = self.db().await?;
        let rescued = q::rescue(&db, self.stmts(), limit.max(1)).await.map_err(|e| self.pg(e))?;
        Ok(RescueReport { rescued })
    }

    /// Makes up to `limit` scheduled and retryable jobs whose time has come
    /// available, and wakes their queues.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn promote(&self, limit: i64) -> Result<PromoteReport> {
        let db = self.db().await?;
        let p = q::promote(&db, self.stmts(), limit.max(1)).await.map_err(|e| self.pg(e))?;
        Ok(PromoteReport { per_queue: p.per_queue, next_run_at: p.next_run_at, db_now: p.db_now })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_keeps_the_end_and_drops_nul() {
        let long = format!("{}END", "é".repeat(ERROR_TEXT_MAX));
        let t = error_text(&long);
        assert!(t.len() <= ERROR_TEXT_MAX + "…".len() + 1);
        assert!(t.ends_with("END") && t.starts_with('…'));
        assert_eq!(error_text("a\0b"), "a\u{fffd}b");
    }
}
