//! The demo's worker: the real [`skiplock::Worker`] runtime with one typed
//! handler per demo kind, and a tally of outcomes read from its events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use skiplock::{Client, EnqueueOptions, Event, Job, JobContext, JobError, JobState, PeriodicJob, Worker, WorkerHandle};
use tokio::sync::Notify;

/// Jobs of each queue running at once.
pub const CONCURRENCY: usize = 50;
/// Backoff before a job that failed once runs again.
const RETRY_IN: Duration = Duration::from_millis(500);

/// What the demo's jobs carry.
#[derive(Serialize, Deserialize)]
pub struct DemoArgs {
    pub n: u32,
    #[serde(default)]
    pub fail_once: bool,
}

/// A demo e-mail (does nothing).
#[derive(Serialize, Deserialize)]
pub struct SendEmail(pub DemoArgs);
impl Job for SendEmail {
    const KIND: &'static str = "demo.send_email";
    const QUEUE: &'static str = "demo-mail";
}

/// A demo thumbnail (does nothing).
#[derive(Serialize, Deserialize)]
pub struct Thumbnail(pub DemoArgs);
impl Job for Thumbnail {
    const KIND: &'static str = "demo.thumbnail";
    const QUEUE: &'static str = "demo-media";
}

/// Fails the first attempt of jobs marked so; completes everything else.
async fn handle(args: &DemoArgs, ctx: &JobContext) -> Result<(), JobError> {
    if args.fail_once && ctx.attempt() == 1 {
        return Err(JobError::retry_after(format!("job {} fails its first attempt, on purpose", args.n), RETRY_IN));
    }
    Ok(())
}

/// What the worker has done so far.
pub struct Tally {
    /// Jobs that reached a final state.
    pub finished: AtomicU64,
    /// Attempts that failed and will be retried.
    pub retried: AtomicU64,
    target: u64,
    done: Notify,
}

impl Tally {
    /// A tally that reports done once `target` jobs are finished.
    pub fn new(target: u64) -> Tally {
        Tally { finished: AtomicU64::new(0), retried: AtomicU64::new(0), target, done: Notify::new() }
    }

    /// Resolves once `target` jobs are finished.
    pub async fn all_done(&self) {
        let done = self.done.notified();
        if self.finished.load(Ordering::Acquire) >= self.target {
            return;
        }
        done.await;
    }

    fn record(&self, state: JobState) {
        if state == JobState::Retryable {
            self.retried.fetch_add(1, Ordering::Relaxed);
        } else if state.is_final() && self.finished.fetch_add(1, Ordering::AcqRel) + 1 >= self.target {
            self.done.notify_waiters();
        }
    }
}

/// How often the dashboard demo's periodic job runs.
const DIGEST_EVERY: Duration = Duration::from_secs(30);

/// Starts the worker on both demo queues; the tally follows its events.
/// With `periodic`, a periodic job too (for the dashboard to show).
pub fn start(client: Client, tally: Arc<Tally>, periodic: bool) -> Result<WorkerHandle> {
    let mut builder = Worker::builder(client);
    if periodic {
        let digest = SendEmail(DemoArgs { n: 0, fail_once: false });
        builder = builder.periodic(PeriodicJob::every("demo-digest", DIGEST_EVERY).job(&digest, EnqueueOptions::new()));
    }
    let worker = builder
        .queue(SendEmail::QUEUE, CONCURRENCY)
        .queue(Thumbnail::QUEUE, CONCURRENCY)
        .scheduler_interval(Duration::from_millis(100))
        .shutdown_grace(Duration::from_secs(5))
        .register(|job: SendEmail, ctx| async move { handle(&job.0, &ctx).await })
        .register(|job: Thumbnail, ctx| async move { handle(&job.0, &ctx).await })
        .build()?;
    let mut events = worker.subscribe();
    let handle = worker.start();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(Event::Finished { state, .. }) => tally.record(state),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "demo progress fell behind the worker's events");
                }
                Err(_) => return,
            }
        }
    });
    Ok(handle)
}
