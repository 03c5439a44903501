//! The leader's part of the dashboard's statistics: every
//! [`STATS_MERGE_INTERVAL`] it merges the workers' per-minute rows
//! (`runtime/stats.rs`) of minutes that ended [`STATS_MERGE_AFTER`] ago into
//! one row per minute, queue, kind and outcome, adds them to
//! `{schema}.stats_hour`, and prunes minutes after
//! [`STATS_MINUTE_RETENTION`] and hours after [`STATS_HOUR_RETENTION`].
//! (The queue depth the dashboard shows beside them is `depth.rs`.)
//!
//! No leader guard: a merge moves each worker row in the statement that
//! deletes it (taking rows `FOR UPDATE SKIP LOCKED`), so two processes
//! merging at once still count each row once, and pruning twice is
//! harmless.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::leader::Leadership;
use crate::db::{self, Db};
use crate::error::Result;
pub use crate::runtime::stats::STATS_MERGE_AFTER;
use crate::service::Service;

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

/// What [`Maintenance::stats_once`](super::Maintenance::stats_once) did.
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

/// What one merge pass did.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Merged {
    pub merged: i64,
    pub pruned: i64,
}

/// The statistics merge and retention, on the leader.
pub(crate) struct Stats {
    db: Db,
    leadership: Arc<Leadership>,
}

impl Stats {
    pub fn new(db: Db, leadership: Arc<Leadership>) -> Stats {
        Stats { db, leadership }
    }

    /// Merges the workers' rows of minutes before `before` (default: those
    /// that ended [`STATS_MERGE_AFTER`] ago), then prunes by retention.
    /// `None` when this process does not lead.
    pub async fn pass(&self, before: Option<DateTime<Utc>>) -> Result<Option<Merged>> {
        if !self.leadership.is_leader() {
            return Ok(None);
        }
        let conn = self.db.conn().await?;
        let now = db::leader::clock(conn.on()).await?;
        let ago = |d: Duration| now - TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        let before = before.unwrap_or_else(|| ago(STATS_MERGE_AFTER + Duration::from_secs(60)));
        let (mut merged, mut pruned) = (0, 0);
        for _ in 0..PASS_STATEMENTS_MAX {
            let n = db::insights::stats_rollup(conn.on(), before, BATCH).await?;
            merged += n;
            if n < BATCH {
                break;
            }
        }
        let (minutes, hours) = (ago(STATS_MINUTE_RETENTION), ago(STATS_HOUR_RETENTION));
        for _ in 0..PASS_STATEMENTS_MAX {
            let n = db::insights::stats_prune(conn.on(), minutes, hours, BATCH).await?;
            pruned += n;
            if n < BATCH {
                break;
            }
        }
        if merged > 0 || pruned > 0 {
            tracing::debug!(merged, pruned, "statistics merged and pruned");
        }
        Ok(Some(Merged { merged, pruned }))
    }
}

impl Service for Stats {
    const NAME: &'static str = "stats";
    type Report = Merged;

    async fn run_once(&self) -> Result<Option<Merged>> {
        self.pass(None).await
    }

    fn next_pass(&self, _last: &Result<Option<Merged>>) -> Duration {
        STATS_MERGE_INTERVAL
    }
}
