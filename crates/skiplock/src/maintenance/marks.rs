//! The marks log (migration 0006) grows by a row per advance, about fifty a
//! second per busy queue; the leader deletes every row older than its
//! queue's newest advance, once per archive interval. Readers only read the
//! newest rows by index, so the rows left dead while a horizon is pinned
//! cost nothing but their space until vacuum can take them.

use std::sync::Arc;
use std::time::Duration;

use super::leader::Leadership;
use crate::db::{self, Db};
use crate::error::Result;
use crate::service::Service;

/// The marks log's pruner: as often as the archive service.
pub(crate) struct MarksPrune {
    interval: Duration,
    db: Db,
    leadership: Arc<Leadership>,
}

impl MarksPrune {
    /// A pass every `interval` (checked as the archive's).
    pub fn new(interval: Duration, db: Db, leadership: Arc<Leadership>) -> MarksPrune {
        MarksPrune { interval, db, leadership }
    }
}

impl Service for MarksPrune {
    const NAME: &'static str = "marks_prune";
    /// Log rows deleted.
    type Report = i64;

    async fn run_once(&self) -> Result<Option<i64>> {
        let out = super::guard::guarded!(&self.leadership, &self.db, |on| { db::marks::prune(on).await? })?;
        Ok(out.map(|(pruned, _, _)| pruned))
    }

    fn next_pass(&self, _last: &Result<Option<i64>>) -> Duration {
        self.interval
    }
}
