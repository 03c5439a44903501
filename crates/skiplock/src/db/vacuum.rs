//! Vacuuming the hot table between autovacuum's rounds.

use super::{Conn, On};
use crate::error::{Error, Result};

/// What the statistics say of the hot table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JobsStats {
    pub dead: i64,
    pub live: i64,
    /// Rows changed since the last analyze.
    pub changed: i64,
    /// The rows the planner believes the table holds (-1: never analysed).
    pub planned: i64,
}

/// The hot table's statistics.
pub(crate) async fn jobs_dead(on: On<'_>) -> Result<JobsStats> {
    let rows = on.run(&on.s.vacuum_jobs_dead, &[]).await?;
    Ok(rows.first().map_or(JobsStats::default(), |r| JobsStats {
        dead: r.get(0),
        live: r.get(1),
        changed: r.get(2),
        planned: r.get(3),
    }))
}

/// Vacuums and analyzes the hot table. VACUUM cannot run in a transaction
/// or through the extended protocol's implicit one, so it goes as a simple
/// query. Without ownership of the table PostgreSQL skips it with a warning.
pub(crate) async fn jobs_vacuum(conn: &Conn) -> Result<()> {
    simple(conn, &conn.on().s.vacuum_jobs_vacuum.sql).await
}

/// Analyzes the hot table (as a simple query, like VACUUM).
pub(crate) async fn jobs_analyze(conn: &Conn) -> Result<()> {
    simple(conn, &conn.on().s.vacuum_jobs_analyze.sql).await
}

/// Runs `sql` as a simple query on `conn`.
async fn simple(conn: &Conn, sql: &str) -> Result<()> {
    conn.client().batch_execute(sql).await.map_err(|e| Error::from_pg(e, conn.on().schema()))
}
