//! Queue statements: settings rows and the queue overview.

use super::DbError as PgError;

use super::{Exec, Statements};

/// Pauses or resumes a queue; returns its new pause flag.
pub(crate) async fn set_paused(db: &dyn Exec, s: &Statements, queue: &str, paused: bool) -> Result<bool, PgError> {
    let rows = db.run(&s.queue_set_paused, &[&queue, &paused]).await?;
    Ok(rows.first().is_some_and(|r| r.get::<_, bool>(1)))
}

/// Every known queue with its flag and counts.
pub(crate) async fn list(db: &dyn Exec, s: &Statements) -> Result<Vec<tokio_postgres::Row>, PgError> {
    db.run(&s.queue_list, &[]).await
}
