//! The worker runtime in one process, one file per topic; the job types and
//! handlers they share are here. Tests wait on events, never on sleeps.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiplock::{Job, JobContext, JobError, Worker, WorkerBuilder};

use crate::support::TestDb;

mod basics;
mod leases;
mod logs;
mod outcomes;
mod prefetch;
mod stopping;
mod wakeups;

#[derive(Serialize, Deserialize)]
pub(super) struct Noop {
    pub n: u32,
}
impl Job for Noop {
    const KIND: &'static str = "noop";
}

pub(super) fn builder(t: &TestDb) -> WorkerBuilder {
    Worker::builder(t.client.clone()).lease(Duration::from_secs(5)).shutdown_grace(Duration::from_secs(5))
}

#[derive(Serialize, Deserialize)]
pub(super) struct Panics;
impl Job for Panics {
    const KIND: &'static str = "panics";
    const MAX_ATTEMPTS: i32 = 2;
}

#[derive(Serialize, Deserialize)]
pub(super) struct Sleepy {
    pub ms: u64,
}
impl Job for Sleepy {
    const KIND: &'static str = "sleepy";
    const MAX_ATTEMPTS: i32 = 1;
    const TIMEOUT: Option<Duration> = Some(Duration::from_millis(200));
}

pub(super) async fn sleepy(job: Sleepy, _ctx: JobContext) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(job.ms)).await;
    Ok(())
}

#[derive(Serialize, Deserialize)]
pub(super) struct Snoozer;
impl Job for Snoozer {
    const KIND: &'static str = "snoozer";
    const MAX_ATTEMPTS: i32 = 1;
}

#[derive(Serialize, Deserialize)]
pub(super) struct Waits;
impl Job for Waits {
    const KIND: &'static str = "waits";
}

/// A handler that runs until it is cancelled, and says why it stopped.
pub(super) async fn waits(_job: Waits, ctx: JobContext) -> Result<(), JobError> {
    ctx.cancelled().await;
    Err(JobError::retry(format!("stopped: {:?}", ctx.cancel_reason())))
}

#[derive(Serialize, Deserialize)]
pub(super) struct Long;
impl Job for Long {
    const KIND: &'static str = "long";
}
