//! What a job is: its typed definition ([`Job`]), its states ([`JobState`]),
//! and the rows the database hands back ([`JobRow`], [`ClaimedJob`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::Error;

/// A job type: its arguments are the type's serde form, its kind is a stable
/// name stored with each job, so that producer and worker agree on both.
///
/// The associated constants are defaults for every job of the type; each
/// enqueue can override them with [`EnqueueOptions`](crate::EnqueueOptions).
///
/// # Example
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct SendEmail { to: String, subject: String }
///
/// impl skiplock::Job for SendEmail {
///     const KIND: &'static str = "send_email";
///     const QUEUE: &'static str = "mail";
///     const MAX_ATTEMPTS: i32 = 5;
/// }
/// ```
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The stable kind name stored in each job row (1 to 255 characters of
    /// letters, digits and `_ . : / -`). Renaming it strands queued jobs.
    const KIND: &'static str;
    /// The queue jobs of this type go to unless told otherwise.
    const QUEUE: &'static str = crate::QUEUE_DEFAULT;
    /// Their priority: 0 (first) to 9 (last).
    const PRIORITY: i16 = crate::PRIORITY_DEFAULT;
    /// How many attempts a job gets before it is discarded.
    const MAX_ATTEMPTS: i32 = crate::MAX_ATTEMPTS_DEFAULT;
    /// How long one attempt may run before it is stopped and failed. `None`
    /// takes the worker's default; a job enqueued with its own timeout
    /// overrides both.
    const TIMEOUT: Option<std::time::Duration> = None;
}

/// Where a job is in its life. The first four live in the hot table that
/// workers scan; the last three are final and live in the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Ready to be claimed now.
    Available,
    /// Waiting for its `run_at` (inserted for later, or snoozed).
    Scheduled,
    /// Claimed by a worker, which holds its lease.
    Running,
    /// Failed an attempt; waiting for its backoff to pass.
    Retryable,
    /// Finished successfully.
    Completed,
    /// Cancelled by an operator or by its handler.
    Cancelled,
    /// Given up on: attempts exhausted, or discarded by its handler.
    Discarded,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Discarded,
    ];

    /// The name used in the database and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Discarded => "discarded",
        }
    }

    /// True for completed, cancelled and discarded: states a job never leaves
    /// (unless an operator retries it).
    pub fn is_final(self) -> bool {
        matches!(self, JobState::Completed | JobState::Cancelled | JobState::Discarded)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        JobState::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            Error::invalid(
                "state",
                format!(
                    "{s:?} is not one of available, scheduled, running, retryable, completed, cancelled, discarded"
                ),
            )
        })
    }
}

/// A fencing lease on a running job: the job id and the token its claim was
/// given. Writes that carry a lease act only while the token still matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The job.
    pub id: i64,
    /// The token of the claim that holds it.
    pub token: i64,
}

/// A job handed to a worker by [`Client::claim`](crate::Client::claim).
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its arguments, as stored (JSON text).
    pub args: Box<RawValue>,
    /// Its priority (0 first).
    pub priority: i16,
    /// This attempt's number, from 1.
    pub attempt: i32,
    /// Attempts allowed in all.
    pub max_attempts: i32,
    /// The lease this claim holds.
    pub lease: Lease,
    /// When the lease runs out unless extended (database clock).
    pub lease_expires_at: DateTime<Utc>,
    /// When the job became due.
    pub run_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When this attempt started (database clock).
    pub attempted_at: DateTime<Utc>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its metadata.
    pub meta: serde_json::Value,
    /// Its own timeout, when enqueued with one (else the worker's default
    /// for the kind applies).
    pub timeout: Option<std::time::Duration>,
}

impl ClaimedJob {
    /// Decodes the arguments into `T`.
    ///
    /// # Errors
    ///
    /// [`Error::Json`] when the stored JSON does not fit `T`.
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(self.args.get()).map_err(|source| Error::Json { kind: self.kind.clone(), source })
    }

    /// A claimed job with made-up fields, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test(id: i64) -> ClaimedJob {
        let now = Utc::now();
        ClaimedJob {
            id,
            queue: "default".into(),
            kind: "test".into(),
            args: RawValue::from_string("{}".into()).expect("valid JSON"),
            priority: 0,
            attempt: 1,
            max_attempts: 20,
            lease: Lease { id, token: 1 },
            lease_expires_at: now,
            run_at: now,
            created_at: now,
            attempted_at: now,
            tags: Vec::new(),
            meta: serde_json::Value::Null,
            timeout: None,
        }
    }
}

/// The result of enqueueing one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    /// The job's id: the new job's, or for a duplicate unique key, the id of
    /// the unfinished job that holds the key.
    pub id: i64,
    /// False when nothing was inserted because of the unique key.
    pub inserted: bool,
}

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

/// One failed attempt, as kept in a job's error history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed.
    pub attempt: i32,
    /// When (database clock).
    pub at: DateTime<Utc>,
    /// What went wrong.
    pub error: String,
}

/// A job as an operator sees it, from the hot table or the archive.
#[derive(Debug, Clone, Serialize)]
pub struct JobRow {
    /// The job id.
    pub id: i64,
    /// Its queue.
    pub queue: String,
    /// Its kind.
    pub kind: String,
    /// Its arguments.
    pub args: serde_json::Value,
    /// Its state.
    pub state: JobState,
    /// Its priority (0 first).
    pub priority: i16,
    /// When it is or was due.
    pub run_at: DateTime<Utc>,
    /// Attempts started so far.
    pub attempt: i32,
    /// Attempts allowed in all.
    pub max_attempts: i32,
    /// Its own timeout in milliseconds, if it has one.
    pub timeout_ms: Option<i32>,
    /// The token of the current (or last) claim.
    pub lease_token: Option<i64>,
    /// When the current lease runs out (running jobs only).
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The worker that holds (or last held) it.
    pub leased_by: Option<String>,
    /// Its unique key, if any.
    pub unique_key: Option<String>,
    /// The errors of its failed attempts, oldest first.
    pub errors: Vec<AttemptError>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its metadata.
    pub meta: serde_json::Value,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When its last attempt started.
    pub attempted_at: Option<DateTime<Utc>>,
    /// When it reached its final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// When an operator asked to cancel it while it ran.
    pub cancel_requested_at: Option<DateTime<Utc>>,
}

impl JobRow {
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> Result<JobRow, Error> {
        let state: String = row.get("state");
        let errors: serde_json::Value = row.get("errors");
        Ok(JobRow {
            id: row.get("id"),
            queue: row.get("queue"),
            kind: row.get("kind"),
            args: row.get("args"),
            state: state.parse()?,
            priority: row.get("priority"),
            run_at: row.get("run_at"),
            attempt: row.get("attempt"),
            max_attempts: row.get("max_attempts"),
            timeout_ms: row.get("timeout_ms"),
            lease_token: row.get("lease_token"),
            lease_expires_at: row.get("lease_expires_at"),
            leased_by: row.get("leased_by"),
            unique_key: row.get("unique_key"),
            errors: serde_json::from_value(errors).unwrap_or_default(),
            tags: row.get("tags"),
            meta: row.get("meta"),
            created_at: row.get("created_at"),
            attempted_at: row.get("attempted_at"),
            finished_at: row.get("finished_at"),
            cancel_requested_at: row.get("cancel_requested_at"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_names() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>().unwrap(), st);
        }
        assert!("finished".parse::<JobState>().unwrap_err().to_string().starts_with("invalid state:"));
    }
}
