//! The scheduler: scheduled and retryable jobs whose time has come become
//! available, and their queues are woken. It sleeps until the next such job
//! is due, but never longer than the scheduler interval, so jobs scheduled
//! meanwhile by other processes wait at most that long. Runs on the leader
//! only, each pass in a leader-guarded transaction.

use std::sync::Arc;
use std::time::Duration;

use super::Inner;
use crate::client::PromoteReport;
use crate::db::{self, Exec};
use crate::runtime::Shared;

/// Jobs made available per statement.
pub(crate) const PROMOTE_BATCH: i64 = 5000;

pub(crate) async fn run(sh: Arc<Shared>, m: Arc<Inner>) {
    let mut leading = m.leader.watch();
    loop {
        let wait = match m.promote_pass().await {
            Ok(Some(r)) if r.total() >= PROMOTE_BATCH => Duration::ZERO,
            Ok(Some(r)) => match (r.next_run_at, r.db_now) {
                (Some(next), Some(now)) => (next - now).to_std().unwrap_or(Duration::ZERO),
                _ => sh.cfg.scheduler_interval,
            },
            Ok(None) => sh.cfg.scheduler_interval,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler pass failed");
                sh.cfg.scheduler_interval
            }
        };
        let wait = wait.min(sh.cfg.scheduler_interval).max(Duration::from_millis(5));
        tokio::select! {
            _ = sh.services_stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = leading.changed() => {}
        }
    }
}

/// One pass inside the leader's transaction.
pub(crate) async fn pass(m: &Inner, tx: &dyn Exec) -> crate::Result<PromoteReport> {
    let p = db::job::promote(tx, m.client.stmts(), PROMOTE_BATCH).await.map_err(|e| m.client.pg(e))?;
    Ok(PromoteReport { per_queue: p.per_queue, next_run_at: p.next_run_at, db_now: p.db_now })
}
