//! Unique keys kept past their job's finish (`{schema}.unique_keys`, for
//! keys whose scope includes final states) are pruned once they no longer
//! hold: expired, their job finished in a state outside the key's scope, or
//! their job gone from the archive. Runs on the leader only, a batch per
//! pass, walking the table in key order across passes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::leader::Leadership;
use crate::db::{self, Db};
use crate::error::Result;
use crate::service::Service;

/// Unique keys looked at per pass: 1,000.
pub const UNIQUE_PRUNE_BATCH: i64 = 1000;

/// The unique-key pruner: as often as the archive service by default.
pub(crate) struct UniqueKeys {
    interval: Duration,
    db: Db,
    leadership: Arc<Leadership>,
    /// Where the next pass goes on from.
    cursor: Mutex<String>,
}

impl UniqueKeys {
    /// A pass every `interval` (checked as the archive's).
    pub fn new(interval: Duration, db: Db, leadership: Arc<Leadership>) -> UniqueKeys {
        UniqueKeys { interval, db, leadership, cursor: Mutex::new(String::new()) }
    }
}

impl Service for UniqueKeys {
    const NAME: &'static str = "unique_keys";
    /// Keys deleted.
    type Report = i64;

    async fn run_once(&self) -> Result<Option<i64>> {
        let after = self.cursor.lock().expect("not poisoned").clone();
        let out = super::guard::guarded!(&self.leadership, &self.db, |on| {
            db::unique::prune(on, &after, UNIQUE_PRUNE_BATCH).await?
        })?;
        let Some(((last, pruned), _, _)) = out else { return Ok(None) };
        // Walk the table a batch per pass; start over at its end.
        *self.cursor.lock().expect("not poisoned") = last.unwrap_or_default();
        Ok(Some(pruned))
    }

    fn next_pass(&self, _last: &Result<Option<i64>>) -> Duration {
        self.interval
    }
}
