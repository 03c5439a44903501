//! [`DepthGauges`]: the queue depth the leader counts (`maintenance/depth.rs`)
//! as `metrics` gauges, so a scrape never counts the jobs table: jobs by
//! queue and state, each queue's oldest available job, and how old the
//! count is. A worker with `WorkerBuilder::depth_metrics(true)` records
//! them every few seconds; the dashboard's `/metrics` at each scrape.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::insights::QueueDepth;
use crate::job::JobState;
use crate::metrics as m;

/// Records [`QueueDepth`]s as gauges (see the module doc). Remembers which
/// (queue, state) pairs it set, so one that emptied is set to 0 rather
/// than left at its last value. Every process that records them reports
/// the same count: take `max` over instances, not `sum`.
#[derive(Debug, Default)]
pub struct DepthGauges {
    seen: Mutex<BTreeSet<(String, JobState)>>,
    queues: Mutex<BTreeSet<String>>,
}

impl DepthGauges {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the gauges from `depth`. A count never made (no leader has run)
    /// sets nothing.
    pub fn record(&self, depth: &QueueDepth) {
        let Some(age) = depth.age() else { return };
        metrics::gauge!(m::QUEUE_DEPTH_AGE).set(age.as_secs_f64());
        let now: BTreeSet<(String, JobState)> = depth.rows.iter().map(|r| (r.queue.clone(), r.state)).collect();
        let mut seen = self.seen.lock().expect("not poisoned");
        for (queue, state) in seen.difference(&now) {
            metrics::gauge!(m::QUEUE_JOBS, "queue" => queue.clone(), "state" => state.as_str()).set(0.0);
        }
        let mut queues = self.queues.lock().expect("not poisoned");
        let mut oldest: std::collections::BTreeMap<&str, f64> = queues.iter().map(|q| (q.as_str(), 0.0)).collect();
        for r in &depth.rows {
            metrics::gauge!(m::QUEUE_JOBS, "queue" => r.queue.clone(), "state" => r.state.as_str()).set(r.count as f64);
            let o = oldest.entry(&r.queue).or_insert(0.0);
            if let Some(secs) = r.oldest_available_secs {
                *o = o.max(secs);
            }
        }
        for (queue, secs) in &oldest {
            metrics::gauge!(m::QUEUE_OLDEST_AVAILABLE, "queue" => (*queue).to_owned()).set(*secs);
        }
        let names: BTreeSet<String> = oldest.keys().map(|q| (*q).to_owned()).collect();
        *queues = names;
        *seen = now;
    }
}
