//! The scheduler: scheduled and retryable jobs whose time has come become
//! available, and their queues are woken. It sleeps until the next such job
//! is due, but never longer than the scheduler interval, so jobs scheduled
//! meanwhile by other processes wait at most that long.

use std::sync::Arc;
use std::time::Duration;

use crate::runtime::{Shared, sleep_or};

/// Jobs made available per statement.
pub(crate) const PROMOTE_BATCH: i64 = 5000;

pub(crate) async fn run(sh: Arc<Shared>) {
    loop {
        let wait = match sh.client.promote(PROMOTE_BATCH).await {
            Ok(r) if r.total() >= PROMOTE_BATCH => Duration::ZERO,
            Ok(r) => match (r.next_run_at, r.db_now) {
                (Some(next), Some(now)) => (next - now).to_std().unwrap_or(Duration::ZERO),
                _ => sh.cfg.scheduler_interval,
            },
            Err(e) => {
                tracing::warn!(error = %e, "scheduler pass failed");
                sh.cfg.scheduler_interval
            }
        };
        let wait = wait.min(sh.cfg.scheduler_interval).max(Duration::from_millis(5));
        if !sleep_or(&sh.services_stop, wait).await {
            return;
        }
    }
}
