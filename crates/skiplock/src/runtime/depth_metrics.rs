//! [`DepthMetrics`]: a worker's service that records the leader's queue
//! depth count as gauges (`WorkerBuilder::depth_metrics`), every
//! [`STATS_DEPTH_INTERVAL`], the interval the leader counts at.

use std::time::Duration;

use crate::client::{DepthGauges, QueueDepth};
use crate::db::Db;
use crate::error::Result;
use crate::maintenance::STATS_DEPTH_INTERVAL;
use crate::service::Service;

/// See the module doc.
pub(crate) struct DepthMetrics {
    db: Db,
    gauges: DepthGauges,
}

impl DepthMetrics {
    pub fn new(db: Db) -> Self {
        DepthMetrics { db, gauges: DepthGauges::new() }
    }
}

impl Service for DepthMetrics {
    const NAME: &'static str = "depth_metrics";
    /// The (queue, state) pairs recorded.
    type Report = usize;

    async fn run_once(&self) -> Result<Option<usize>> {
        let depth = QueueDepth::read(&self.db).await?;
        self.gauges.record(&depth);
        Ok(Some(depth.rows.len()))
    }

    fn next_pass(&self, _last: &Result<Option<usize>>) -> Duration {
        STATS_DEPTH_INTERVAL
    }
}
