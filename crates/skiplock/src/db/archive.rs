//! Archive statements: dated partitions ahead of time, retention by
//! dropping whole tables.

use chrono::{DateTime, Utc};

use super::On;
use crate::error::Result;

/// Retention per final state in ms (`None`: keep forever).
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeepMs {
    pub completed: Option<i64>,
    pub cancelled: Option<i64>,
    pub discarded: Option<i64>,
}

/// Creates partitions for the days from `at`'s (`None`: now) to
/// `days_ahead` later; returns the names created.
pub(crate) async fn ensure(on: On<'_>, at: Option<DateTime<Utc>>, days_ahead: i32) -> Result<Vec<String>> {
    Ok(on.run(&on.s.archive_ensure, &[&at, &days_ahead]).await?.iter().map(|r| r.get(0)).collect())
}

/// Drops the dated tables past retention at `at`; returns their names.
pub(crate) async fn expire(on: On<'_>, at: Option<DateTime<Utc>>, keep: KeepMs) -> Result<Vec<String>> {
    let rows = on.run(&on.s.archive_expire, &[&at, &keep.completed, &keep.cancelled, &keep.discarded]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Deletes up to `limit` rows of the default partition past retention.
pub(crate) async fn prune_default(on: On<'_>, at: Option<DateTime<Utc>>, keep: KeepMs, limit: i64) -> Result<i64> {
    let rows =
        on.run(&on.s.archive_prune_default, &[&at, &keep.completed, &keep.cancelled, &keep.discarded, &limit]).await?;
    Ok(rows.first().map_or(0, |r| r.get(0)))
}

/// Sets the transaction's lock timeout (`"1000ms"`).
pub(crate) async fn lock_timeout(on: On<'_>, timeout: &str) -> Result<()> {
    on.run(&on.s.archive_lock_timeout, &[&timeout]).await?;
    Ok(())
}
