//! The archive's dated partitions: one per UTC day, created a few days ahead
//! by the leader, each split by final state so that retention (`pruner.rs`)
//! can drop one state's rows of a day as a table. Creating a day's partition
//! first moves any rows the default partition caught for that day (as
//! PostgreSQL requires); the DDL runs in the leader's transaction with a
//! short lock timeout, so it never queues workers' finishes behind it for
//! long, and is retried on the next pass if it could not get its locks.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Inner;
use super::pruner::{self, ArchiveReport};
use crate::db::{self, Exec};
use crate::error::Result;
use crate::runtime::Shared;

/// UTC days of partitions kept ready beyond today: 3.
pub const ARCHIVE_DAYS_AHEAD_DEFAULT: u32 = 3;
/// Most UTC days of partitions kept ready beyond today: 366 (the archive's
/// functions refuse more, whoever calls them).
pub const ARCHIVE_DAYS_AHEAD_MAX: u32 = 366;
/// How far from the database's clock an archive pass's time may be
/// ([`Maintenance::archive_once`](super::Maintenance::archive_once)): 31
/// days, before or (for the partitions made ahead, not for retention) after.
/// The archive's `SECURITY DEFINER` functions refuse other times, so a role
/// allowed to call them can neither make tables without bound nor drop
/// today's.
pub const ARCHIVE_AT_WINDOW: Duration = Duration::from_secs(31 * 24 * 3600);
/// How often the leader creates partitions and applies retention: every
/// 10 minutes (and at once on being elected).
pub const ARCHIVE_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);
/// Longest wait for a lock by the archive's DDL: 1 second, or a quarter of
/// the leader lease if that is shorter.
pub const ARCHIVE_LOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// Wait before trying a failed archive pass again: 30 seconds.
const ARCHIVE_RETRY: Duration = Duration::from_secs(30);

/// One archive pass at `at` (`None`: the database's now) inside the
/// leader's transaction: partitions ahead, then retention.
pub(crate) async fn pass(m: &Inner, tx: &dyn Exec, at: Option<DateTime<Utc>>) -> Result<ArchiveReport> {
    let (s, pg) = (m.client.stmts(), |e| m.client.pg(e));
    // The pass holds the leader row (FOR SHARE) while it waits for locks,
    // and the leader's renewal waits behind it: keep the wait well inside
    // the renewal's own timeout (half a lease).
    let timeout = format!("{}ms", ARCHIVE_LOCK_TIMEOUT.min(m.lease / 4).as_millis().max(1));
    db::archive::lock_timeout(tx, s, &timeout).await.map_err(pg)?;
    let mut report = ArchiveReport {
        created: db::archive::ensure(tx, s, at, i32::try_from(m.days_ahead).unwrap_or(i32::MAX)).await.map_err(pg)?,
        ..ArchiveReport::default()
    };
    pruner::pass(m, tx, at, &mut report).await?;
    Ok(report)
}

/// The archive service's loop: a pass on being elected and every
/// `interval` while leading.
pub(crate) async fn run(sh: Arc<Shared>, m: Arc<Inner>) {
    let mut leading = m.leader.watch();
    loop {
        let wait = if m.leader.is_leader() {
            match m.archive_pass(None).await {
                Ok(_) => m.archive_interval,
                Err(e) => {
                    tracing::warn!(error = %e, "archive pass failed; trying again soon");
                    ARCHIVE_RETRY.min(m.archive_interval)
                }
            }
        } else {
            m.archive_interval
        };
        tokio::select! {
            _ = sh.services_stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = leading.changed() => {}
        }
    }
}
