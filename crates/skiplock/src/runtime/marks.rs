//! [`Marks`]: a worker's service that moves up the low-water marks of the
//! queues it claims from (migration 0006), so its claims start past the jobs
//! already consumed, dead index entries included (which vacuum cannot remove
//! while a long transaction pins the horizon).
//!
//! Every [`MARK_ADVANCE_INTERVAL`], one statement for the queues this worker
//! claimed jobs from since its last pass; nothing while it claims nothing.
//! Several workers may advance one queue: each takes the queue's lock with a
//! try-lock, so at most one moves it at a time, and none ever waits (nor
//! makes an enqueue wait longer than one advance). The first pass recomputes
//! every queue's marks from the start of each priority: a restart repairs a
//! mark left too high by a write that bypassed the triggers.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::queue::QueueRt;
use crate::db::{self, Db};
use crate::error::Result;
use crate::service::Service;

/// How often a worker moves up the marks of the queues it is claiming from:
/// 20 ms. Claims between two passes walk what was consumed since the last.
pub const MARK_ADVANCE_INTERVAL: Duration = Duration::from_millis(20);

/// The pause after a failed pass.
const MARK_RETRY: Duration = Duration::from_secs(1);

/// See the module doc.
pub(crate) struct Marks {
    db: Db,
    queues: Vec<Arc<QueueRt>>,
    /// Per queue, its claim count at the last pass (`None` before the first,
    /// the repair).
    seen: Mutex<Option<Vec<u64>>>,
}

impl Marks {
    pub fn new(db: Db, queues: Vec<Arc<QueueRt>>) -> Self {
        Marks { db, queues, seen: Mutex::new(None) }
    }
}

impl Service for Marks {
    const NAME: &'static str = "marks";
    /// The queues whose marks moved.
    type Report = usize;

    async fn run_once(&self) -> Result<Option<usize>> {
        let now: Vec<u64> = self.queues.iter().map(|q| q.claims.load(Ordering::Relaxed)).collect();
        let last = self.seen.lock().expect("not poisoned").clone();
        let from_start = last.is_none();
        let busy: Vec<&str> = self
            .queues
            .iter()
            .zip(&now)
            .enumerate()
            .filter(|(i, (_, n))| last.as_ref().is_none_or(|l| l[*i] != **n))
            .map(|(_, (q, _))| q.name.as_str())
            .collect();
        if busy.is_empty() {
            return Ok(Some(0));
        }
        let conn = self.db.conn().await?;
        let moved = db::marks::advance(conn.on(), &busy, from_start).await?;
        *self.seen.lock().expect("not poisoned") = Some(now);
        Ok(Some(moved.len()))
    }

    fn next_pass(&self, last: &Result<Option<usize>>) -> Duration {
        // A failed pass (the database away) is logged; not fifty times a second.
        if last.is_err() { MARK_RETRY } else { MARK_ADVANCE_INTERVAL }
    }
}
