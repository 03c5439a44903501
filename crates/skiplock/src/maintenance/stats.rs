//! The leader's part of the dashboard's figures, so that a page view never
//! scans the jobs table:
//!
//! - **Queue depth**: every [`STATS_DEPTH_INTERVAL`] the leader counts the
//!   hot table by queue and state, with each queue's oldest available job,
//!   into `{schema}.queue_depth` (`db/insights/depth_count.sql`): one
//!   `GROUP BY` per interval by one process, whatever the number of viewers.
//!   A big backlog makes the count slower; the interval then grows so that
//!   counting takes at most a fiftieth of the time.
//! - **Statistics**: every [`STATS_MERGE_INTERVAL`] it merges the workers'
//!   per-minute rows (`runtime/stats.rs`) of minutes that ended
//!   [`STATS_MERGE_AFTER`] ago into one row per minute, queue, kind and
//!   outcome, adds them to `{schema}.stats_hour`, and prunes minutes after
//!   [`STATS_MINUTE_RETENTION`] and hours after [`STATS_HOUR_RETENTION`].
//!
//! Both are idempotent and need no leader guard: two processes counting at
//! once write the same figures, and a merge moves each worker row in the
//! statement that deletes it, so it is counted once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};

use super::{Inner, Maintenance};
use crate::db;
use crate::error::Result;
use crate::runtime::Shared;
pub use crate::runtime::stats::STATS_MERGE_AFTER;

/// How often the leader counts the queue depth: 2 seconds (longer while a
/// count takes more than a fiftieth of that).
pub const STATS_DEPTH_INTERVAL: Duration = Duration::from_secs(2);
/// How often the leader merges and prunes the statistics: 30 seconds.
pub const STATS_MERGE_INTERVAL: Duration = Duration::from_secs(30);
/// How long per-minute statistics are kept: 6 hours.
pub const STATS_MINUTE_RETENTION: Duration = Duration::from_secs(6 * 3600);
/// How long per-hour statistics are kept: 14 days.
pub const STATS_HOUR_RETENTION: Duration = Duration::from_secs(14 * 24 * 3600);
/// Rows merged or pruned per statement.
const BATCH: i64 = 10_000;
/// Statements per merge or prune pass at most (a bound, far above need).
const PASS_STATEMENTS_MAX: usize = 100;
/// The depth count takes at most this share of the time: 1/50.
const DEPTH_DUTY: u32 = 50;

/// What [`Maintenance::stats_once`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsReport {
    /// (queue, state) pairs the depth count found.
    pub depth_pairs: i64,
    /// How long the depth count took.
    pub depth_took: Duration,
    /// Workers' minute rows merged.
    pub merged: i64,
    /// Rows pruned by retention.
    pub pruned: i64,
}

pub(crate) async fn run(sh: Arc<Shared>, m: Arc<Inner>) {
    let mut took = Duration::ZERO;
    let mut merged_at: Option<Instant> = None;
    loop {
        let wait = STATS_DEPTH_INTERVAL.max(took * DEPTH_DUTY);
        tokio::select! {
            _ = sh.services_stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if !m.leader.is_leader() {
            continue;
        }
        match depth_pass(&m, took).await {
            Ok((_, t)) => took = t,
            Err(e) => tracing::warn!(error = %e, "queue depth count failed"),
        }
        if merged_at.is_none_or(|t| t.elapsed() >= STATS_MERGE_INTERVAL) {
            merged_at = Some(Instant::now());
            if let Err(e) = merge_pass(&m, None).await {
                tracing::warn!(error = %e, "statistics merge failed");
            }
        }
    }
}

/// Counts the hot table into `queue_depth`; the pairs found and how long it
/// took.
async fn depth_pass(m: &Inner, previous: Duration) -> Result<(i64, Duration)> {
    let started = Instant::now();
    let db = m.client.db().await?;
    let pairs = db::insights::depth_count(&db, m.client.stmts(), previous.as_secs_f64() * 1000.0)
        .await
        .map_err(|e| m.client.pg(e))?;
    Ok((pairs, started.elapsed()))
}

/// Merges the workers' rows of minutes before `before` (default: those that
/// ended [`STATS_MERGE_AFTER`] ago), then prunes by retention; the rows
/// merged and pruned.
async fn merge_pass(m: &Inner, before: Option<DateTime<Utc>>) -> Result<(i64, i64)> {
    let (client, s) = (&m.client, m.client.stmts());
    let db = client.db().await?;
    let now = db::leader::clock(&db, s).await.map_err(|e| client.pg(e))?;
    let ago = |d: Duration| now - TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    let before = before.unwrap_or_else(|| ago(STATS_MERGE_AFTER + Duration::from_secs(60)));
    let (mut merged, mut pruned) = (0, 0);
    for _ in 0..PASS_STATEMENTS_MAX {
        let n = db::insights::stats_rollup(&db, s, before, BATCH).await.map_err(|e| client.pg(e))?;
        merged += n;
        if n < BATCH {
            break;
        }
    }
    let (minutes, hours) = (ago(STATS_MINUTE_RETENTION), ago(STATS_HOUR_RETENTION));
    for _ in 0..PASS_STATEMENTS_MAX {
        let n = db::insights::stats_prune(&db, s, minutes, hours, BATCH).await.map_err(|e| client.pg(e))?;
        pruned += n;
        if n < BATCH {
            break;
        }
    }
    if merged > 0 || pruned > 0 {
        tracing::debug!(merged, pruned, "statistics merged and pruned");
    }
    Ok((merged, pruned))
}

impl Maintenance {
    /// The statistics service's pass: counts the queue depth, merges the
    /// workers' statistics rows of minutes before `merge_before` (`None`:
    /// those that ended [`STATS_MERGE_AFTER`] ago; a test may pass a later
    /// time once its workers stopped), and prunes by retention. `None` when
    /// this process does not lead.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn stats_once(&self, merge_before: Option<DateTime<Utc>>) -> Result<Option<StatsReport>> {
        let m = &self.inner;
        if !m.leader.is_leader() {
            return Ok(None);
        }
        let (depth_pairs, depth_took) = depth_pass(m, Duration::ZERO).await?;
        let (merged, pruned) = merge_pass(m, merge_before).await?;
        Ok(Some(StatsReport { depth_pairs, depth_took, merged, pruned }))
    }
}
