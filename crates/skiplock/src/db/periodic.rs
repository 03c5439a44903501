//! Periodic-job statements: the rows that remember each schedule's next run.

use chrono::{DateTime, Utc};

use super::On;
use crate::error::Result;

/// One periodic job's row.
#[derive(Debug, Clone)]
pub(crate) struct PeriodicRow {
    pub name: String,
    pub schedule: String,
    pub next_run_at: DateTime<Utc>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub db_now: DateTime<Utc>,
}

/// The rows of `names` (`None`: all).
pub(crate) async fn list(on: On<'_>, names: Option<&[String]>) -> Result<Vec<PeriodicRow>> {
    let rows = on.run(&on.s.periodic_list, &[&names]).await?;
    Ok(rows
        .iter()
        .map(|r| PeriodicRow {
            name: r.get(0),
            schedule: r.get(1),
            next_run_at: r.get(2),
            last_run_at: r.get(3),
            db_now: r.get(4),
        })
        .collect())
}

/// Registers `name` with `schedule` and first run `first`, or restarts it
/// from `first` if its schedule changed; returns its next run.
pub(crate) async fn reset(on: On<'_>, name: &str, schedule: &str, first: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let rows = on.run(&on.s.periodic_reset, &[&name, &schedule, &first]).await?;
    Ok(rows.first().map_or(first, |r| r.get(0)))
}

/// Moves `name`'s next run from `from` to `to` if it is still `from`; true
/// if it was (the caller then inserts the runs in the same transaction).
pub(crate) async fn advance(
    on: On<'_>,
    name: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    last: Option<DateTime<Utc>>,
) -> Result<bool> {
    Ok(!on.run(&on.s.periodic_advance, &[&name, &from, &to, &last]).await?.is_empty())
}
