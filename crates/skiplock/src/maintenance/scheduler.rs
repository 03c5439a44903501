//! The scheduler: scheduled and retryable jobs whose time has come become
//! available, and their queues are woken. It sleeps until the next such job
//! is due, but never longer than its interval, so jobs scheduled meanwhile
//! by other processes wait at most that long. Runs on the leader only, each
//! pass in a leader-guarded transaction.

use std::sync::Arc;
use std::time::Duration;

use super::leader::Leadership;
use crate::client::PromoteReport;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::service::Service;

/// Longest sleep of the scheduler between passes: 1 second.
pub const SCHEDULER_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// Jobs made available per statement: 5,000.
pub(crate) const PROMOTE_BATCH: i64 = 5000;
/// Shortest sleep between passes: 5 ms.
const SCHEDULER_WAIT_MIN: Duration = Duration::from_millis(5);

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub(crate) struct SchedulerConfig {
    /// Longest sleep between passes. Default [`SCHEDULER_INTERVAL_DEFAULT`];
    /// at least 5 ms.
    pub interval: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig { interval: SCHEDULER_INTERVAL_DEFAULT }
    }
}

/// The scheduler service.
pub(crate) struct Scheduler {
    cfg: SchedulerConfig,
    db: Db,
    leadership: Arc<Leadership>,
}

impl Scheduler {
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an interval under 5 ms.
    pub fn new(cfg: SchedulerConfig, db: Db, leadership: Arc<Leadership>) -> Result<Scheduler> {
        if cfg.interval < SCHEDULER_WAIT_MIN {
            return Err(Error::invalid("scheduler_interval", "must be at least 5ms"));
        }
        Ok(Scheduler { cfg, db, leadership })
    }
}

/// One batch, in the leader's transaction `on`.
pub(crate) async fn batch(on: db::On<'_>) -> Result<PromoteReport> {
    Ok(db::job::promote(on, PROMOTE_BATCH).await?.into())
}

impl Service for Scheduler {
    const NAME: &'static str = "scheduler";
    type Report = PromoteReport;

    async fn run_once(&self) -> Result<Option<PromoteReport>> {
        Ok(super::guard::guarded!(&self.leadership, &self.db, |on| batch(on).await?)?.map(|(r, _, _)| r))
    }

    fn next_pass(&self, last: &Result<Option<PromoteReport>>) -> Duration {
        let wait = match last {
            Ok(Some(r)) if r.total() >= PROMOTE_BATCH => Duration::ZERO,
            Ok(Some(r)) => match (r.next_run_at, r.db_now) {
                (Some(next), Some(now)) => (next - now).to_std().unwrap_or(Duration::ZERO),
                _ => self.cfg.interval,
            },
            _ => self.cfg.interval,
        };
        wait.clamp(SCHEDULER_WAIT_MIN, self.cfg.interval)
    }
}
