//! What a handler sees ([`JobContext`]) and what it returns ([`JobError`]).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::job::{ClaimedJob, Job};

/// Why a running handler was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// An operator cancelled the job.
    Cancelled,
    /// The worker is shutting down and the grace period ran out; the job goes
    /// back to the queue without using up an attempt.
    Shutdown,
    /// The worker lost (or could not confirm) the job's lease: another worker
    /// may be about to run it.
    LeaseLost,
}

/// State shared between a running job's handler and the runtime.
#[derive(Debug)]
pub(crate) struct RunningJob {
    pub id: i64,
    pub attempt: i32,
    pub max_attempts: i32,
    pub queue: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub meta: serde_json::Value,
    pub token: CancellationToken,
    pub reason: Mutex<Option<CancelReason>>,
    pub progress: Mutex<Option<String>>,
}

impl RunningJob {
    pub fn new(job: &ClaimedJob, token: CancellationToken) -> Self {
        RunningJob {
            id: job.id,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            queue: job.queue.clone(),
            kind: job.kind.clone(),
            tags: job.tags.clone(),
            meta: job.meta.clone(),
            token,
            reason: Mutex::new(None),
            progress: Mutex::new(None),
        }
    }

    /// Asks the handler to stop; the first reason given wins.
    pub fn cancel(&self, reason: CancelReason) {
        let mut r = self.reason.lock().expect("not poisoned");
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.token.cancel();
    }

    /// Why the handler was asked to stop: the first reason given, or
    /// `Shutdown` when its token was cancelled from above (the worker's
    /// `jobs` token, at shutdown).
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        let given = *self.reason.lock().expect("not poisoned");
        given.or_else(|| self.token.is_cancelled().then_some(CancelReason::Shutdown))
    }
}

/// What a handler knows about the job it runs, and how it learns that it
/// should stop.
///
/// # Example: a long job that stops when asked
///
/// ```no_run
/// # async fn step(_: u32) {}
/// async fn export(ctx: skiplock::JobContext) -> Result<(), skiplock::JobError> {
///     for page in 0..1000 {
///         if ctx.is_cancelled() {
///             return Err(skiplock::JobError::retry(format!("stopped at page {page}")));
///         }
///         step(page).await;
///         ctx.set_progress(&serde_json::json!({ "page": page }))?;
///     }
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct JobContext {
    pub(crate) job: Arc<RunningJob>,
}

impl JobContext {
    /// The job's id.
    pub fn id(&self) -> i64 {
        self.job.id
    }
    /// This attempt's number, from 1.
    pub fn attempt(&self) -> i32 {
        self.job.attempt
    }
    /// Attempts allowed in all.
    pub fn max_attempts(&self) -> i32 {
        self.job.max_attempts
    }
    /// The job's queue.
    pub fn queue(&self) -> &str {
        &self.job.queue
    }
    /// The job's kind.
    pub fn kind(&self) -> &str {
        &self.job.kind
    }
    /// The job's tags.
    pub fn tags(&self) -> &[String] {
        &self.job.tags
    }
    /// The job's metadata.
    pub fn meta(&self) -> &serde_json::Value {
        &self.job.meta
    }
    /// Resolves when the handler should stop: the job was cancelled by an
    /// operator, the worker is shutting down past its grace period, or the
    /// lease was lost. The handler is dropped a short grace after that.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.job.token.cancelled()
    }
    /// True once the handler should stop.
    pub fn is_cancelled(&self) -> bool {
        self.job.token.is_cancelled()
    }
    /// Why the handler should stop, once it should.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.job.cancel_reason()
    }
    /// The token behind [`JobContext::cancelled`], to hand to other tasks.
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.job.token
    }
    /// Records progress; it is written to the job's `meta.progress` with the
    /// next heartbeat (batched with every other running job's). Progress
    /// set again before that replaces it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for `progress`
    /// when it does not serialise, is larger than
    /// [`META_MAX_BYTES`](crate::META_MAX_BYTES) of JSON, or holds a NUL
    /// character (which PostgreSQL cannot store); the progress recorded
    /// before stays.
    pub fn set_progress(&self, progress: &impl Serialize) -> crate::Result<()> {
        let json = serde_json::to_string(progress).map_err(|e| crate::Error::invalid("progress", e))?;
        crate::validate::json("progress", &json, crate::validate::META_MAX_BYTES)?;
        *self.job.progress.lock().expect("not poisoned") = Some(json);
        Ok(())
    }
}

/// Your app's state, handed to a handler registered with
/// [`WorkerBuilder::register_with`](crate::WorkerBuilder::register_with):
/// take it apart in the handler's arguments, `State(app): State<App>`, as
/// with axum's extractor of the same name.
#[derive(Debug, Clone, Copy, Default)]
pub struct State<S>(pub S);

/// How a handler says an attempt did not simply succeed. Any error converts
/// into a retry with `?`; the constructors pick other outcomes.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use skiplock::JobError;
///
/// fn check(status: u16) -> Result<(), JobError> {
///     match status {
///         200 => Ok(()),
///         429 => Err(JobError::snooze(Duration::from_secs(30))), // no attempt used
///         404 => Err(JobError::discard("the resource is gone")),
///         _ => Err(JobError::retry(format!("status {status}"))),
///     }
/// }
/// ```
pub struct JobError {
    pub(crate) kind: JobErrorKind,
}

#[derive(Debug)]
pub(crate) enum JobErrorKind {
    Retry { error: String, after: Option<Duration> },
    Snooze(Duration),
    Cancel(String),
    Discard(String),
}

impl JobError {
    /// Fail this attempt; retry after the queue's backoff (or discard when
    /// attempts are used up).
    pub fn retry(error: impl fmt::Display) -> Self {
        JobError { kind: JobErrorKind::Retry { error: error.to_string(), after: None } }
    }
    /// Fail this attempt; retry after `after` rather than the queue's backoff.
    pub fn retry_after(error: impl fmt::Display, after: Duration) -> Self {
        JobError { kind: JobErrorKind::Retry { error: error.to_string(), after: Some(after) } }
    }
    /// Try again after `after` without using up an attempt.
    pub fn snooze(after: Duration) -> Self {
        JobError { kind: JobErrorKind::Snooze(after) }
    }
    /// Stop for good as cancelled.
    pub fn cancel(reason: impl fmt::Display) -> Self {
        JobError { kind: JobErrorKind::Cancel(reason.to_string()) }
    }
    /// Stop for good as discarded.
    pub fn discard(reason: impl fmt::Display) -> Self {
        JobError { kind: JobErrorKind::Discard(reason.to_string()) }
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.kind, f)
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            JobErrorKind::Retry { error, .. } => f.write_str(error),
            JobErrorKind::Snooze(d) => write!(f, "snoozed for {d:?}"),
            JobErrorKind::Cancel(r) => write!(f, "cancelled: {r}"),
            JobErrorKind::Discard(r) => write!(f, "discarded: {r}"),
        }
    }
}

/// Any error becomes a retry, its message the error and its sources joined
/// with `: `.
impl<E: Into<Box<dyn StdError + Send + Sync>>> From<E> for JobError {
    fn from(e: E) -> Self {
        let e: Box<dyn StdError + Send + Sync> = e.into();
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        JobError::retry(text)
    }
}

/// The future a handler returns.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send>>;

/// A handler with its job type erased: decodes the args, then runs.
pub(crate) trait ErasedHandler: Send + Sync {
    fn call(&self, args: Box<serde_json::value::RawValue>, ctx: JobContext) -> HandlerFuture;
}

/// An async function of a job type's args.
pub(crate) struct TypedHandler<J, F> {
    pub f: F,
    pub _job: std::marker::PhantomData<fn(J)>,
}

impl<J, F, Fut> ErasedHandler for TypedHandler<J, F>
where
    J: Job,
    F: Fn(J, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn call(&self, args: Box<serde_json::value::RawValue>, ctx: JobContext) -> HandlerFuture {
        match serde_json::from_str::<J>(args.get()) {
            Ok(job) => Box::pin((self.f)(job, ctx)),
            Err(e) => {
                let msg = format!("args do not decode as {}: {e}", J::KIND);
                Box::pin(async move { Err(JobError::retry(msg)) })
            }
        }
    }
}

/// An async function of raw JSON args, for handlers of any kind (the CLI's
/// `work --exec`).
pub(crate) struct RawHandler<F> {
    pub f: F,
}

impl<F, Fut> ErasedHandler for RawHandler<F>
where
    F: Fn(Box<serde_json::value::RawValue>, JobContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), JobError>> + Send + 'static,
{
    fn call(&self, args: Box<serde_json::value::RawValue>, ctx: JobContext) -> HandlerFuture {
        Box::pin((self.f)(args, ctx))
    }
}
