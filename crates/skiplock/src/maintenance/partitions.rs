//! The archive's dated partitions: one per UTC day, created a few days ahead
//! by the leader, each split by final state so that retention (`pruner.rs`)
//! can drop one state's rows of a day as a table. Creating a day's partition
//! first moves any rows the default partition caught for that day (as
//! PostgreSQL requires). Each partition is made, and each expired table
//! dropped, in a leader-guarded transaction of its own with a short lock
//! timeout, so the DDL holds its locks for one statement, never queues
//! workers' finishes behind it for long, and is retried on the next pass if
//! it could not get them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Inner;
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

/// Sets the DDL's lock timeout in the leader's transaction `tx`: the pass
/// holds the leader row while it waits for locks; keep the wait well inside
/// the lease.
async fn ddl_lock_timeout(m: &Inner, tx: &dyn Exec) -> Result<()> {
    let timeout = format!("{}ms", ARCHIVE_LOCK_TIMEOUT.min(m.lease / 4).as_millis().max(1));
    db::archive::lock_timeout(tx, m.client.stmts(), &timeout).await.map_err(|e| m.client.pg(e))
}

/// Creates the first missing partition of `at`'s UTC day (`None`: the
/// database's now) and the days ahead, in the leader's transaction `tx`;
/// its name, or `None` when none is missing.
pub(crate) async fn create_one(m: &Inner, tx: &dyn Exec, at: Option<DateTime<Utc>>) -> Result<Option<String>> {
    ddl_lock_timeout(m, tx).await?;
    let days = i32::try_from(m.days_ahead).unwrap_or(i32::MAX);
    let made = db::archive::ensure(tx, m.client.stmts(), at, days).await.map_err(|e| m.client.pg(e))?;
    Ok(made.into_iter().next())
}

/// Drops the first table past retention at `at`, in the leader's
/// transaction `tx`; its name, or `None` when none is due.
pub(crate) async fn expire_one(m: &Inner, tx: &dyn Exec, at: Option<DateTime<Utc>>) -> Result<Option<String>> {
    ddl_lock_timeout(m, tx).await?;
    let dropped = db::archive::expire(tx, m.client.stmts(), at, m.retention.ms()).await.map_err(|e| m.client.pg(e))?;
    Ok(dropped.into_iter().next())
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
