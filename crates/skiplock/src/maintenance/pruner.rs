//! Retention: finished jobs are kept in the archive for a time per final
//! state, then dropped. The archive is partitioned by UTC day and, within a
//! day, by state (see `partitions.rs`), so retention drops whole tables: O(1)
//! however many jobs a day held, and no dead tuples for vacuum. The default
//! partition (jobs finished before the dated days existed) is pruned with
//! batched deletes. Unique keys kept past their job's finish
//! (`{schema}.unique_keys`) are pruned here too, once they no longer hold.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Inner;
use crate::db::{self, Exec};
use crate::error::{Error, Result};

/// How long completed jobs stay in the archive: 1 day.
pub const RETENTION_COMPLETED_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// How long cancelled jobs stay in the archive: 7 days.
pub const RETENTION_CANCELLED_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long discarded jobs stay in the archive: 7 days.
pub const RETENTION_DISCARDED_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Longest retention of a state: 100 years (of 366 days). Longer means
/// forever: use `None`. (Beyond about 6,000 years the cut-off would fall
/// before the earliest date PostgreSQL has, and beyond 292,000 the interval
/// itself overflows: every archive pass would fail.)
pub const RETENTION_MAX: Duration = Duration::from_secs(100 * 366 * 24 * 3600);
/// Rows of the archive's default partition deleted per pass: 10,000.
pub const DEFAULT_PARTITION_PRUNE_BATCH: i64 = 10_000;
/// Unique keys looked at per pass: 1,000.
pub const UNIQUE_PRUNE_BATCH: i64 = 1000;

/// How long finished jobs stay in the archive, per final state (`None`:
/// forever; at most [`RETENTION_MAX`], checked when the maintenance or
/// worker is built). Jobs are dropped a whole UTC day at a time, so a job is
/// kept between its retention and a day more.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use skiplock::Retention;
/// let keep = Retention::default()
///     .completed(Some(Duration::from_secs(3 * 24 * 3600)))
///     .discarded(None); // keep failures forever
/// # let _ = keep;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retention {
    /// Completed jobs (default [`RETENTION_COMPLETED_DEFAULT`]).
    pub completed: Option<Duration>,
    /// Cancelled jobs (default [`RETENTION_CANCELLED_DEFAULT`]).
    pub cancelled: Option<Duration>,
    /// Discarded jobs (default [`RETENTION_DISCARDED_DEFAULT`]).
    pub discarded: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            completed: Some(RETENTION_COMPLETED_DEFAULT),
            cancelled: Some(RETENTION_CANCELLED_DEFAULT),
            discarded: Some(RETENTION_DISCARDED_DEFAULT),
        }
    }
}

impl Retention {
    /// Keeps every finished job forever (no retention).
    pub fn forever() -> Self {
        Retention { completed: None, cancelled: None, discarded: None }
    }
    /// Sets how long completed jobs are kept (`None`: forever).
    pub fn completed(mut self, keep: Option<Duration>) -> Self {
        self.completed = keep;
        self
    }
    /// Sets how long cancelled jobs are kept (`None`: forever).
    pub fn cancelled(mut self, keep: Option<Duration>) -> Self {
        self.cancelled = keep;
        self
    }
    /// Sets how long discarded jobs are kept (`None`: forever).
    pub fn discarded(mut self, keep: Option<Duration>) -> Self {
        self.discarded = keep;
        self
    }

    /// Each state's retention is at most [`RETENTION_MAX`]; the error names
    /// the state (`retention.completed`).
    pub(crate) fn check(&self) -> Result<()> {
        for (field, keep) in [
            ("retention.completed", self.completed),
            ("retention.cancelled", self.cancelled),
            ("retention.discarded", self.discarded),
        ] {
            match keep {
                Some(d) if d > RETENTION_MAX => {
                    return Err(Error::invalid(
                        field,
                        format!("{}s is more than RETENTION_MAX (100 years); None keeps forever", d.as_secs()),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    pub(crate) fn ms(&self) -> db::archive::KeepMs {
        let ms = |d: Option<Duration>| d.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        db::archive::KeepMs {
            completed: ms(self.completed),
            cancelled: ms(self.cancelled),
            discarded: ms(self.discarded),
        }
    }
}

/// What one archive pass did.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct ArchiveReport {
    /// Dated partitions created ahead of time.
    pub created: Vec<String>,
    /// Tables dropped by retention (a day's partition, or one state's leaf).
    pub dropped: Vec<String>,
    /// Rows deleted from the default partition by retention.
    pub default_pruned: i64,
    /// Unique keys deleted because they no longer hold.
    pub unique_keys_pruned: i64,
}

/// Retention's deletes in the default partition at `at` (`None`: the
/// database's now), inside the leader's transaction `tx`: rows deleted.
pub(crate) async fn prune_default(m: &Inner, tx: &dyn Exec, at: Option<DateTime<Utc>>) -> Result<i64> {
    let keep = m.retention.ms();
    db::archive::prune_default(tx, m.client.stmts(), at, keep, DEFAULT_PARTITION_PRUNE_BATCH)
        .await
        .map_err(|e| m.client.pg(e))
}

/// A batch of the unique-key prune, inside the leader's transaction `tx`:
/// keys deleted. It walks the table a batch per pass, starting over at its
/// end.
pub(crate) async fn prune_unique(m: &Inner, tx: &dyn Exec) -> Result<i64> {
    let after = m.unique_cursor.lock().expect("not poisoned").clone();
    let (last, pruned) =
        db::unique::prune(tx, m.client.stmts(), &after, UNIQUE_PRUNE_BATCH).await.map_err(|e| m.client.pg(e))?;
    *m.unique_cursor.lock().expect("not poisoned") = last.unwrap_or_default();
    Ok(pruned)
}
