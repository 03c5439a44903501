//! [`Marks`]: a worker's service that moves up the low-water marks of the
//! queues it claims from (migration 0006), so its claims start past the jobs
//! already consumed, dead index entries included (which vacuum cannot remove
//! while a long transaction pins the horizon).
//!
//! Every [`MARK_ADVANCE_INTERVAL`], one statement for the queues this worker
//! claimed jobs from since its last pass; nothing while it claims nothing.
//! Several workers may advance one queue: each takes the queue's lock with a
//! try-lock, so at most one moves it at a time and none waits, nor makes an
//! enqueue wait. A queue whose enqueues keep the lock held (back to back, or
//! one long transaction that enqueued) would starve its advance: once its
//! last advance is [`MARK_STARVED`] old, a pass waits up to [`MARK_WAIT`]
//! for the lock, at most once per [`MARK_STARVED`] (enqueues arriving
//! meanwhile wait behind it: at most 10 ms in every 250 ms).
//! The first pass recomputes every queue's marks from the start of each
//! priority: a restart repairs a mark left too high by a write that bypassed
//! the triggers.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::queue::QueueRt;
use crate::db::marks::Advanced;
use crate::db::{self, Db};
use crate::error::Result;
use crate::service::Service;

/// How often a worker moves up the marks of the queues it is claiming from:
/// 20 ms. Claims between two passes walk what was consumed since the last.
pub const MARK_ADVANCE_INTERVAL: Duration = Duration::from_millis(20);
/// How long a queue's marks may go without an advance, their lock always
/// held by enqueues, before a pass waits for it: 250 ms.
pub const MARK_STARVED: Duration = Duration::from_millis(250);
/// How long such a pass waits for the lock: 10 ms.
pub const MARK_WAIT: Duration = Duration::from_millis(10);
/// The pause after a failed pass.
const MARK_RETRY: Duration = Duration::from_secs(1);

/// See the module doc.
pub(crate) struct Marks {
    db: Db,
    queues: Vec<Arc<QueueRt>>,
    state: Mutex<State>,
}

struct State {
    /// Whether the first pass (the repair) is done.
    repaired: bool,
    /// Per queue: its claim count when last advanced, and when.
    last: Vec<(u64, Instant)>,
    /// Per queue: when a pass last waited for its lock. A long transaction
    /// that enqueued holds the lock until it ends; each wait makes the
    /// queue's new enqueues wait too, so at most one per [`MARK_STARVED`].
    waited: Vec<Option<Instant>>,
}

impl Marks {
    pub fn new(db: Db, queues: Vec<Arc<QueueRt>>) -> Self {
        let last = queues.iter().map(|_| (0, Instant::now())).collect();
        let waited = queues.iter().map(|_| None).collect();
        Marks { db, queues, state: Mutex::new(State { repaired: false, last, waited }) }
    }
}

impl Service for Marks {
    const NAME: &'static str = "marks";
    /// The queues whose marks moved.
    type Report = usize;

    async fn run_once(&self) -> Result<Option<usize>> {
        let now = Instant::now();
        let (from_start, busy, waits): (bool, Vec<usize>, Vec<i32>) = {
            let st = self.state.lock().expect("not poisoned");
            let busy: Vec<usize> = (0..self.queues.len())
                .filter(|&i| !st.repaired || self.queues[i].claims.load(Ordering::Relaxed) != st.last[i].0)
                .collect();
            let waits = busy
                .iter()
                .map(|&i| {
                    // The repair, and a starved queue (not more than once
                    // per MARK_STARVED), wait for the lock.
                    let starved =
                        now - st.last[i].1 >= MARK_STARVED && st.waited[i].is_none_or(|w| now - w >= MARK_STARVED);
                    let wait = !st.repaired || starved;
                    if wait { MARK_WAIT.as_millis() as i32 } else { 0 }
                })
                .collect();
            (!st.repaired, busy, waits)
        };
        if busy.is_empty() {
            return Ok(Some(0));
        }
        let claims: Vec<u64> = busy.iter().map(|&i| self.queues[i].claims.load(Ordering::Relaxed)).collect();
        let names: Vec<&str> = busy.iter().map(|&i| self.queues[i].name.as_str()).collect();
        let conn = self.db.conn().await?;
        let done = db::marks::advance(conn.on(), &names, &waits, from_start).await?;
        let mut st = self.state.lock().expect("not poisoned");
        st.repaired = true;
        let mut moved = 0;
        for (k, &i) in busy.iter().enumerate() {
            if waits[k] > 0 {
                st.waited[i] = Some(now);
            }
            let state = done.iter().find(|(q, _)| *q == self.queues[i].name).map(|(_, s)| *s);
            match state {
                Some(Advanced::Busy) | None => {}
                Some(s) => {
                    moved += (s == Advanced::Moved) as usize;
                    st.last[i] = (claims[k], now);
                }
            }
        }
        Ok(Some(moved))
    }

    fn next_pass(&self, last: &Result<Option<usize>>) -> Duration {
        // A failed pass (the database away) is logged; not fifty times a second.
        if last.is_err() { MARK_RETRY } else { MARK_ADVANCE_INTERVAL }
    }
}
