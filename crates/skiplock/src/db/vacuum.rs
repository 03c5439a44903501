//! Vacuuming the hot table between autovacuum's rounds.

use super::{DbError, Exec, Pooled, Statements};

/// Dead and live tuples of the hot table.
pub(crate) async fn jobs_dead(db: &dyn Exec, s: &Statements) -> Result<(i64, i64), DbError> {
    let rows = db.run(&s.vacuum_jobs_dead, &[]).await?;
    Ok(rows.first().map_or((0, 0), |r| (r.get(0), r.get(1))))
}

/// Vacuums and analyzes the hot table. VACUUM cannot run in a transaction
/// or through the extended protocol's implicit one, so it goes as a simple
/// query. Without ownership of the table PostgreSQL skips it with a warning.
pub(crate) async fn jobs_vacuum(db: &Pooled, s: &Statements) -> Result<(), DbError> {
    db.client().batch_execute(&s.vacuum_jobs_vacuum.sql).await?;
    Ok(())
}
