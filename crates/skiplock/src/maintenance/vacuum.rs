//! Vacuums the hot table when its dead tuples pile up. Every claim and every
//! finish leaves a dead row version behind; autovacuum visits a database
//! once per `autovacuum_naptime` (a minute by default), and in that time a
//! busy queue leaves hundreds of thousands: the table and its indexes grow,
//! and claims walk dead index entries. The leader checks the statistics
//! every few seconds and vacuums when a threshold is passed. `SKIP_LOCKED`
//! makes a vacuum already running elsewhere (autovacuum, another process)
//! a no-op rather than a wait.

use std::sync::Arc;
use std::time::Duration;

use super::leader::Leadership;
use crate::db::{self, Db};
use crate::error::Result;
use crate::service::Service;

/// How often the leader looks at the hot table's statistics: 5 seconds.
pub const VACUUM_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Dead tuples that always warrant a vacuum: 50,000.
pub const VACUUM_DEAD_MIN: i64 = 50_000;
/// Rows changed since the last analyze that warrant one, once they are at
/// least as many as the planner believes the table holds: 1,000.
pub const ANALYZE_CHANGED_MIN: i64 = 1_000;

/// Whether `dead` dead tuples beside `live` live ones warrant a vacuum: at
/// least [`VACUUM_DEAD_MIN`], and more than a fifth of the live ones (a big
/// backlog is not vacuumed for a few dead tuples).
pub(crate) fn due(dead: i64, live: i64) -> bool {
    dead >= VACUUM_DEAD_MIN && dead * 5 > live
}

/// Whether the table changed enough to need a fresh analyze: at least
/// [`ANALYZE_CHANGED_MIN`] rows changed, and at least as many as the planner
/// believes the table holds. The case it is for: pooled connections cache
/// the workers' statements' generic plans, made with the statistics of the
/// moment; a table analysed empty (after a drain) gets plans that scan it
/// whole, which a burst of a million jobs then runs until the next analyze.
/// Autovacuum gets there within a minute; this, within
/// [`VACUUM_CHECK_INTERVAL`] (an analyze invalidates the cached plans).
pub(crate) fn analyze_due(changed: i64, planned: i64) -> bool {
    changed >= ANALYZE_CHANGED_MIN && changed >= planned
}

/// The vacuum service: looks at the hot table's statistics every
/// [`VACUUM_CHECK_INTERVAL`] while this process leads.
pub(crate) struct Vacuum {
    db: Db,
    leadership: Arc<Leadership>,
}

impl Vacuum {
    pub fn new(db: Db, leadership: Arc<Leadership>) -> Vacuum {
        Vacuum { db, leadership }
    }
}

impl Service for Vacuum {
    const NAME: &'static str = "vacuum";
    /// Whether it vacuumed or analyzed.
    type Report = bool;

    /// Vacuums (and analyzes) the hot table if it is due, or only analyzes
    /// it if its statistics are out of date; `Some(true)` if it did either.
    /// (No leader guard: a vacuum cannot run in a transaction, and two at
    /// once are harmless, `SKIP_LOCKED` makes the second a no-op.)
    async fn run_once(&self) -> Result<Option<bool>> {
        if !self.leadership.is_leader() {
            return Ok(None);
        }
        let conn = self.db.conn().await?;
        let stats = db::vacuum::jobs_dead(conn.on()).await?;
        let started = std::time::Instant::now();
        if due(stats.dead, stats.live) {
            db::vacuum::jobs_vacuum(&conn).await?;
            tracing::debug!(?stats, took = ?started.elapsed(), "vacuumed the hot table");
            metrics::counter!(crate::metrics::HOT_TABLE_VACUUMS).increment(1);
            return Ok(Some(true));
        }
        if analyze_due(stats.changed, stats.planned) {
            db::vacuum::jobs_analyze(&conn).await?;
            tracing::debug!(?stats, took = ?started.elapsed(), "analyzed the hot table");
            metrics::counter!(crate::metrics::HOT_TABLE_ANALYZES).increment(1);
            return Ok(Some(true));
        }
        Ok(Some(false))
    }

    fn next_pass(&self, _last: &Result<Option<bool>>) -> Duration {
        VACUUM_CHECK_INTERVAL
    }
}

#[cfg(test)]
mod tests {
    use super::{analyze_due, due};

    #[test]
    fn thresholds() {
        assert!(!due(10_000, 0), "below the minimum");
        assert!(due(60_000, 100_000));
        assert!(!due(60_000, 1_000_000), "a fifth of a big backlog is needed");
        assert!(analyze_due(1_000_000, 0), "a burst into a table analysed empty");
        assert!(analyze_due(5_000, -1), "never analysed");
        assert!(!analyze_due(500, 0), "a few rows");
        assert!(!analyze_due(100_000, 1_000_000), "autovacuum's business");
    }
}
