//! Low-water mark statements (migration 0006): the claim reads the marks;
//! these move them up and prune their log.

use super::On;
use crate::error::Result;

/// What an advance did to one queue's marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advanced {
    Moved,
    /// Nothing to move past.
    Same,
    /// An enqueue in flight held the queue's lock: skipped.
    Busy,
}

/// Advances the marks of `queues`, each waiting up to its `wait_ms` for its
/// lock (0: not at all); what it did, by queue. `from_start`: recompute
/// each from the start of its priority (a repair).
pub(crate) async fn advance(
    on: On<'_>,
    queues: &[&str],
    wait_ms: &[i32],
    from_start: bool,
) -> Result<Vec<(String, Advanced)>> {
    let rows = on.run(&on.s.marks_advance, &[&queues, &from_start, &wait_ms]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let state = match r.get::<_, &str>(1) {
                "moved" => Advanced::Moved,
                "busy" => Advanced::Busy,
                _ => Advanced::Same,
            };
            (r.get(0), state)
        })
        .collect())
}

/// Prunes the marks log; returns the rows deleted.
pub(crate) async fn prune(on: On<'_>) -> Result<i64> {
    let rows = on.run(&on.s.marks_prune, &[]).await?;
    Ok(rows.first().map(|r| r.get(0)).unwrap_or_default())
}
