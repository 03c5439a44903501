//! Unique-key statements: the keys kept past their job's finish.

use super::On;
use crate::error::Result;

/// Deletes keys that no longer hold among up to `limit` keys after `after`;
/// returns the last key looked at (`None` at the table's end) and the count
/// deleted.
pub(crate) async fn prune(on: On<'_>, after: &str, limit: i64) -> Result<(Option<String>, i64)> {
    let rows = on.run(&on.s.unique_prune, &[&after, &limit]).await?;
    let r = rows.first().expect("one row");
    Ok((r.get(0), r.get(1)))
}
