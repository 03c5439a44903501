//! Queue statements: settings rows and the queue overview.

use crate::error::Result;

use super::On;

/// Pauses or resumes a queue; returns its new pause flag.
pub(crate) async fn set_paused(on: On<'_>, queue: &str, paused: bool) -> Result<bool> {
    let rows = on.run(&on.s.queue_set_paused, &[&queue, &paused]).await?;
    Ok(rows.first().is_some_and(|r| r.get::<_, bool>(1)))
}

/// Every known queue with its flag and counts.
pub(crate) async fn list(on: On<'_>) -> Result<Vec<tokio_postgres::Row>> {
    on.run(&on.s.queue_list, &[]).await
}
