//! The archive service: dated partitions ahead of time, and retention.
//!
//! Finished jobs move to `jobs_archive`, partitioned by UTC day and, within
//! a day, by final state. The leader keeps the partitions of today and a few
//! days ahead ready (creating a day's partition first moves any rows the
//! default partition caught for that day, as PostgreSQL requires), and
//! applies retention per state by dropping whole tables: O(1) however many
//! jobs a day held, and no dead tuples for vacuum. The default partition
//! (jobs finished outside every dated day) is pruned with batched deletes.
//!
//! Each partition is made, and each expired table dropped, in a
//! leader-guarded transaction of its own with a short lock timeout, so the
//! DDL holds its locks for one statement, never queues workers' finishes
//! behind it for long, and is retried on the next pass if it could not get
//! them.

pub use crate::validate::{ARCHIVE_AT_WINDOW, ARCHIVE_DAYS_AHEAD_MAX, RETENTION_MAX};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::leader::Leadership;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::service::Service;

/// UTC days of partitions kept ready beyond today: 3.
pub const ARCHIVE_DAYS_AHEAD_DEFAULT: u32 = 3;
/// How often the leader creates partitions and applies retention: every
/// 10 minutes (and at once on being elected).
pub const ARCHIVE_INTERVAL_DEFAULT: Duration = Duration::from_secs(600);
/// Longest wait for a lock by the archive's DDL: 1 second, or a quarter of
/// the leader lease if that is shorter.
pub const ARCHIVE_LOCK_TIMEOUT: Duration = Duration::from_secs(1);
/// Wait before trying a failed archive pass again: 30 seconds, or the
/// interval if that is shorter.
const ARCHIVE_RETRY: Duration = Duration::from_secs(30);

/// How long completed jobs stay in the archive: 1 day.
pub const RETENTION_COMPLETED_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// How long cancelled jobs stay in the archive: 7 days.
pub const RETENTION_CANCELLED_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long discarded jobs stay in the archive: 7 days.
pub const RETENTION_DISCARDED_DEFAULT: Duration = Duration::from_secs(7 * 24 * 3600);
/// Rows of the archive's default partition deleted per pass: 10,000.
pub const DEFAULT_PARTITION_PRUNE_BATCH: i64 = 10_000;

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

/// The archive service's settings.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveConfig {
    /// UTC days of partitions made ahead of today. Default
    /// [`ARCHIVE_DAYS_AHEAD_DEFAULT`]; 0 to [`ARCHIVE_DAYS_AHEAD_MAX`].
    pub days_ahead: u32,
    /// Time between passes. Default [`ARCHIVE_INTERVAL_DEFAULT`]; at least
    /// a second.
    pub interval: Duration,
    /// How long finished jobs are kept. Default [`Retention::default`];
    /// each state at most [`RETENTION_MAX`].
    pub retention: Retention,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            days_ahead: ARCHIVE_DAYS_AHEAD_DEFAULT,
            interval: ARCHIVE_INTERVAL_DEFAULT,
            retention: Retention::default(),
        }
    }
}

/// The archive service.
pub(crate) struct Archive {
    cfg: ArchiveConfig,
    db: Db,
    leadership: Arc<Leadership>,
}

impl Archive {
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a setting out of its range, naming it.
    pub fn new(cfg: ArchiveConfig, db: Db, leadership: Arc<Leadership>) -> Result<Archive> {
        if cfg.days_ahead > ARCHIVE_DAYS_AHEAD_MAX {
            return Err(Error::invalid(
                "archive_days_ahead",
                format!("{} is more than {ARCHIVE_DAYS_AHEAD_MAX}", cfg.days_ahead),
            ));
        }
        if cfg.interval < Duration::from_secs(1) {
            return Err(Error::invalid("archive_interval", "must be at least 1s"));
        }
        cfg.retention.check()?;
        Ok(Archive { cfg, db, leadership })
    }

    /// One pass at `at` (`None`: the database's now): the partitions ahead,
    /// one transaction each, then retention's drops, one each, then the
    /// default partition's prune. `None` when this process does not lead.
    pub async fn pass(&self, at: Option<DateTime<Utc>>) -> Result<Option<ArchiveReport>> {
        let (l, d) = (&self.leadership, &self.db);
        let mut report = ArchiveReport::default();
        let days = i32::try_from(self.cfg.days_ahead).expect("at most 366");
        // At most a partition per day ahead (and today): bounded even if
        // the database kept answering with one.
        for _ in 0..=self.cfg.days_ahead {
            let made = super::guard::guarded!(l, d, |on| {
                ddl_lock_timeout(l, on).await?;
                db::archive::ensure(on, at, days).await?.into_iter().next()
            })?;
            match made {
                None => return Ok(None),
                Some((Some(name), _, _)) => report.created.push(name),
                Some((None, _, _)) => break,
            }
        }
        let keep = self.cfg.retention.ms();
        loop {
            let dropped = super::guard::guarded!(l, d, |on| {
                ddl_lock_timeout(l, on).await?;
                db::archive::expire(on, at, keep).await?.into_iter().next()
            })?;
            match dropped {
                None => return Ok(None),
                Some((Some(name), _, _)) => report.dropped.push(name),
                Some((None, _, _)) => break,
            }
        }
        let pruned = super::guard::guarded!(l, d, |on| {
            db::archive::prune_default(on, at, keep, DEFAULT_PARTITION_PRUNE_BATCH).await?
        })?;
        let Some((pruned, _, _)) = pruned else { return Ok(None) };
        report.default_pruned = pruned;
        if !report.created.is_empty() || !report.dropped.is_empty() {
            tracing::info!(created = ?report.created, dropped = ?report.dropped, "archive partitions changed");
            self.leadership
                .events
                .emit(Event::ArchiveMaintained { created: report.created.clone(), dropped: report.dropped.clone() });
        }
        Ok(Some(report))
    }
}

/// Sets the DDL's lock timeout in the leader's transaction `on`: the pass
/// holds the leader row while it waits for locks; keep the wait well inside
/// the lease.
async fn ddl_lock_timeout(l: &Leadership, on: db::On<'_>) -> Result<()> {
    let timeout = format!("{}ms", ARCHIVE_LOCK_TIMEOUT.min(l.lease / 4).as_millis().max(1));
    db::archive::lock_timeout(on, &timeout).await
}

impl Service for Archive {
    const NAME: &'static str = "archive";
    type Report = ArchiveReport;

    async fn run_once(&self) -> Result<Option<ArchiveReport>> {
        self.pass(None).await
    }

    fn next_pass(&self, last: &Result<Option<ArchiveReport>>) -> Duration {
        match last {
            Err(_) => ARCHIVE_RETRY.min(self.cfg.interval),
            _ => self.cfg.interval,
        }
    }
}
