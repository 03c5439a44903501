//! The queue depth for the dashboard, so that a page view never scans the
//! jobs table: every [`STATS_DEPTH_INTERVAL`] the leader counts the hot
//! table by queue and state, with each queue's oldest available job, into
//! `{schema}.queue_depth` (`db/insights/depth_count.sql`): one `GROUP BY`
//! per interval by one process, whatever the number of viewers. A big
//! backlog makes the count slower; the interval then grows so that counting
//! takes at most a fiftieth of the time.
//!
//! No leader guard: two processes counting at once write the same figures,
//! and a count of a big backlog must not hold the leader row (a takeover
//! would wait for it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::leader::Leadership;
use crate::db::{self, Db};
use crate::error::Result;
use crate::service::Service;

/// How often the leader counts the queue depth: 2 seconds (longer while a
/// count takes more than a fiftieth of that).
pub const STATS_DEPTH_INTERVAL: Duration = Duration::from_secs(2);
/// The depth count takes at most this share of the time: 1/50.
const DEPTH_DUTY: u32 = 50;

/// What one count found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Counted {
    /// (queue, state) pairs.
    pub pairs: i64,
    /// How long the count took.
    pub took: Duration,
}

/// The queue depth counter, on the leader.
pub(crate) struct QueueDepth {
    db: Db,
    leadership: Arc<Leadership>,
    /// How long the last count took.
    took: Mutex<Duration>,
}

impl QueueDepth {
    pub fn new(db: Db, leadership: Arc<Leadership>) -> QueueDepth {
        QueueDepth { db, leadership, took: Mutex::new(Duration::ZERO) }
    }
}

impl Service for QueueDepth {
    const NAME: &'static str = "queue_depth";
    type Report = Counted;

    async fn run_once(&self) -> Result<Option<Counted>> {
        if !self.leadership.is_leader() {
            return Ok(None);
        }
        let previous = *self.took.lock().expect("not poisoned");
        let started = Instant::now();
        let conn = self.db.conn().await?;
        let pairs = db::insights::depth_count(conn.on(), previous.as_secs_f64() * 1000.0).await?;
        let took = started.elapsed();
        *self.took.lock().expect("not poisoned") = took;
        Ok(Some(Counted { pairs, took }))
    }

    fn next_pass(&self, _last: &Result<Option<Counted>>) -> Duration {
        STATS_DEPTH_INTERVAL.max(*self.took.lock().expect("not poisoned") * DEPTH_DUTY)
    }
}
