//! Health statements: what `Client::health` reads, each from the server's
//! own views or an index-backed count, never a scan of the hot table.

use chrono::{DateTime, NaiveDate, Utc};

use super::On;
use crate::error::Result;

/// The hot table's tuples and maintenance times.
pub(crate) struct HotTableRow {
    pub live: i64,
    pub dead: i64,
    pub last_vacuum: Option<DateTime<Utc>>,
    pub last_analyze: Option<DateTime<Utc>>,
    pub db_now: DateTime<Utc>,
}

pub(crate) async fn hot_table(on: On<'_>) -> Result<HotTableRow> {
    let rows = on.run(&on.s.health_hot_table, &[]).await?;
    let r = rows.first().expect("one row");
    Ok(HotTableRow {
        live: r.try_get(0)?,
        dead: r.try_get(1)?,
        last_vacuum: r.try_get(2)?,
        last_analyze: r.try_get(3)?,
        db_now: r.try_get(4)?,
    })
}

/// The oldest xmin holder.
pub(crate) struct XminRow {
    pub kind: String,
    pub who: String,
    pub xid_age: i64,
    pub secs: Option<f64>,
    pub usename: Option<String>,
    pub application: Option<String>,
    pub state: Option<String>,
    pub client_addr: Option<String>,
    pub datname: Option<String>,
}

pub(crate) async fn oldest_xmin(on: On<'_>) -> Result<Option<XminRow>> {
    let rows = on.run(&on.s.health_xmin, &[]).await?;
    rows.first()
        .map(|r| {
            Ok(XminRow {
                kind: r.try_get(0)?,
                who: r.try_get(1)?,
                xid_age: r.try_get(2)?,
                secs: r.try_get(3)?,
                usename: r.try_get(4)?,
                application: r.try_get(5)?,
                state: r.try_get(6)?,
                client_addr: r.try_get(7)?,
                datname: r.try_get(8)?,
            })
        })
        .transpose()
}

pub(crate) async fn notify_usage(on: On<'_>) -> Result<f64> {
    let rows = on.run(&on.s.health_notify, &[]).await?;
    Ok(rows.first().expect("one row").try_get(0)?)
}

/// Running jobs whose lease ran out more than `grace_ms` ago: how many, and
/// how long ago the oldest's did, in seconds.
pub(crate) async fn stuck(on: On<'_>, grace_ms: i64) -> Result<(i64, Option<f64>)> {
    let rows = on.run(&on.s.health_stuck, &[&grace_ms]).await?;
    let r = rows.first().expect("one row");
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// Jobs discarded by workers, and jobs rescued, in the last hour.
pub(crate) async fn last_hour(on: On<'_>) -> Result<(i64, i64)> {
    let rows = on.run(&on.s.health_discards, &[]).await?;
    let r = rows.first().expect("one row");
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// The archive's dated tables.
pub(crate) struct PartitionsRow {
    pub ahead: i64,
    pub has_today: bool,
    pub oldest_day: Option<NaiveDate>,
    pub default_rows: i64,
}

pub(crate) async fn partitions(on: On<'_>) -> Result<PartitionsRow> {
    let rows = on.run(&on.s.health_partitions, &[]).await?;
    let r = rows.first().expect("one row");
    Ok(PartitionsRow {
        ahead: r.try_get(0)?,
        has_today: r.try_get(1)?,
        oldest_day: r.try_get(2)?,
        default_rows: r.try_get(3)?,
    })
}

/// Queues with available jobs that no live worker serves and that are not
/// paused: (queue, jobs waiting counted up to `cap`).
pub(crate) async fn unserved(on: On<'_>, cap: i64) -> Result<Vec<(String, i64)>> {
    let rows = on.run(&on.s.health_unserved, &[&cap]).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}
