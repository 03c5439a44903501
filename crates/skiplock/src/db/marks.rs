//! Low-water mark statements (migration 0006): the claim reads the marks;
//! these move them up and prune their log.

use super::On;
use crate::error::Result;

/// Advances the marks of `queues`; returns the queues whose marks moved.
/// `from_start`: recompute each from the start of its priority (a repair).
pub(crate) async fn advance(on: On<'_>, queues: &[&str], from_start: bool) -> Result<Vec<String>> {
    let rows = on.run(&on.s.marks_advance, &[&queues, &from_start]).await?;
    Ok(rows.iter().filter(|r| r.get::<_, bool>(1)).map(|r| r.get(0)).collect())
}

/// Prunes the marks log; returns the rows deleted.
pub(crate) async fn prune(on: On<'_>) -> Result<i64> {
    let rows = on.run(&on.s.marks_prune, &[]).await?;
    Ok(rows.first().map(|r| r.get(0)).unwrap_or_default())
}
