//! Leader statements: the leader row's election, resignation, and the guard
//! that opens every maintenance pass.

use chrono::{DateTime, Utc};

use super::On;
use crate::error::Result;

/// A held leadership: when it was won, when its lease ends, and the
/// database's clock when this was read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Held {
    pub elected_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub db_now: DateTime<Utc>,
}

/// Takes or renews the leader row for `id`, leased `lease_ms`, waiting at
/// most `lock_timeout` (e.g. `"2500ms"`) for a pass in flight; `None` when
/// another process holds it.
pub(crate) async fn elect(on: On<'_>, id: &str, lease_ms: i64, lock_timeout: &str) -> Result<Option<Held>> {
    let rows = on.run(&on.s.leader_elect, &[&id, &lease_ms, &lock_timeout]).await?;
    rows.first().map(held).transpose()
}

/// The backend pid of the connection `on` runs on.
pub(crate) async fn backend(on: On<'_>) -> Result<i32> {
    let rows = on.run(&on.s.leader_backend, &[]).await?;
    Ok(rows.first().expect("one row").try_get(0)?)
}

/// Ends the sessions (not themselves waiting on a lock) that keep backend
/// `waiting` waiting; see `evict.sql`. Returns (pid, signalled) of each.
pub(crate) async fn evict(on: On<'_>, waiting: i32) -> Result<Vec<(i32, bool)>> {
    let rows = on.run(&on.s.leader_evict, &[&waiting]).await?;
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Deletes the leader row if `id` holds it; true if it did.
pub(crate) async fn resign(on: On<'_>, id: &str) -> Result<bool> {
    Ok(!on.run(&on.s.leader_resign, &[&id]).await?.is_empty())
}

/// Limits on a maintenance pass's transaction, as PostgreSQL settings
/// (`"2500ms"`).
pub(crate) struct PassLimits {
    pub statement: String,
    pub lock: String,
    pub idle: String,
}

/// In a transaction: bounds it by `limits`, locks the leader row FOR KEY
/// SHARE if `id` leads now, and returns the database clock; `None` if it
/// does not lead.
pub(crate) async fn guard(on: On<'_>, id: &str, limits: &PassLimits) -> Result<Option<DateTime<Utc>>> {
    let rows = on.run(&on.s.leader_guard, &[&id, &limits.statement, &limits.lock, &limits.idle]).await?;
    Ok(rows.first().map(|r| r.try_get(0)).transpose()?)
}

/// The database's clock now.
pub(crate) async fn clock(on: On<'_>) -> Result<DateTime<Utc>> {
    let rows = on.run(&on.s.leader_clock, &[]).await?;
    Ok(rows.first().expect("one row").try_get(0)?)
}

/// The current leader, if its lease holds: (id, held).
pub(crate) async fn get(on: On<'_>) -> Result<Option<(String, Held)>> {
    let rows = on.run(&on.s.leader_get, &[]).await?;
    rows.first()
        .map(|r| {
            Ok((r.try_get(0)?, Held { elected_at: r.try_get(1)?, expires_at: r.try_get(2)?, db_now: r.try_get(3)? }))
        })
        .transpose()
}

/// Decodes (elected_at, expires_at, db_now); a malformed row is an error,
/// never a panic in the election task.
fn held(r: &tokio_postgres::Row) -> Result<Held> {
    Ok(Held { elected_at: r.try_get(0)?, expires_at: r.try_get(1)?, db_now: r.try_get(2)? })
}
