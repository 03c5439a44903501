//! This worker's per-minute statistics, for the dashboard: attempts by
//! minute, queue, kind and outcome, each with a histogram of queue times
//! (`run_at` to the attempt's start).
//!
//! Counted in memory as outcomes are written (two hooks: the executor says
//! an attempt started, with its kind and queue time; the completer says how
//! its outcome was written), and upserted every [`STATS_FLUSH_INTERVAL`] by
//! the [`StatsWriter`] service (spawned by `runtime::start` beside the
//! heartbeat and the registry, on the worker's pool) into rows of
//! `{schema}.stats_minute` that only this worker writes (its worker id is in
//! the key), with the minute's totals so far: no row is shared between
//! workers, so writers never wait for each other, and a write repeated after
//! a lost answer changes nothing. The leader merges
//! the workers' rows of minutes that ended [`STATS_MERGE_AFTER`] ago
//! (`maintenance/stats.rs`). A minute this worker could not write within
//! [`STATS_UNWRITTEN_KEEP`] (the database away that long) is dropped, so it
//! never writes a minute the leader may have merged already.
//!
//! docs/DESIGN.md, "Why per-worker statistics rows?", has the numbers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::client::{QueueTimeHistogram, StatsOutcome};
use crate::db::insights::StatsRows;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::job::{ClaimedJob, JobState, Lease, Outcome};
use crate::service::Service;

/// How often a worker writes its statistics: 2 seconds.
pub const STATS_FLUSH_INTERVAL: Duration = Duration::from_secs(2);
/// Distinct kinds a worker names in its statistics: 200. Jobs of further
/// kinds are counted under `other`, so an enqueuer inventing kinds cannot
/// grow the table without end.
pub const STATS_KINDS_MAX: usize = 200;
/// How long a worker keeps a minute it could not write: 3 minutes, less
/// than [`STATS_MERGE_AFTER`], so it never writes a minute the leader
/// merged.
pub const STATS_UNWRITTEN_KEEP: Duration = Duration::from_secs(180);
/// How long after a minute ends the leader merges the workers' rows of it:
/// 5 minutes.
pub const STATS_MERGE_AFTER: Duration = Duration::from_secs(300);
/// Attempts remembered between their start and their written outcome, at
/// most (a bound for attempts whose outcome is never written here: given
/// up at shutdown, or stale).
const STARTED_MAX: usize = 1_000_000;

type Key = (i64, Arc<str>, Arc<str>, StatsOutcome);

#[derive(Default)]
struct Cell {
    n: i64,
    queue_time: QueueTimeHistogram,
    /// Bumped at each change; a write clears `dirty` only if it wrote the
    /// version it read.
    version: u64,
    written: u64,
}

#[derive(Default)]
struct State {
    /// Attempts started and not yet finished: their kind and queue time.
    started: HashMap<Lease, (Arc<str>, Duration)>,
    /// Kinds named so far (at most [`STATS_KINDS_MAX`]).
    kinds: HashSet<Arc<str>>,
    queues: HashSet<Arc<str>>,
    cells: BTreeMap<Key, Cell>,
}

/// A worker's statistics in memory.
#[derive(Default)]
pub(crate) struct Recorder {
    state: Mutex<State>,
}

fn intern(set: &mut HashSet<Arc<str>>, name: &str, max: usize) -> Arc<str> {
    if let Some(s) = set.get(name) {
        return s.clone();
    }
    if set.len() >= max {
        return Arc::from(crate::metrics::KIND_OTHER);
    }
    let s: Arc<str> = Arc::from(name);
    set.insert(s.clone());
    s
}

fn minute_of(t: DateTime<Utc>) -> i64 {
    let s = t.timestamp();
    s - s.rem_euclid(60)
}

impl Recorder {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    /// An attempt started, `waited` after its claim (a prefetched job waits
    /// for a slot): remember its kind and queue time until its outcome is
    /// written.
    pub fn started(&self, job: &ClaimedJob, waited: Duration) {
        let wait = (job.attempted_at - job.run_at).to_std().unwrap_or_default() + waited;
        let mut st = self.state();
        if st.started.len() >= STARTED_MAX {
            st.started.clear();
        }
        let kind = intern(&mut st.kinds, &job.kind, STATS_KINDS_MAX);
        st.started.insert(job.lease, (kind, wait));
    }

    /// An attempt's outcome was written as `state`: count it in this minute.
    pub fn finished(&self, lease: Lease, queue: &str, outcome: &Outcome, state: JobState) {
        let mut st = self.state();
        let Some((kind, wait)) = st.started.remove(&lease) else { return };
        let counted = match (outcome, state) {
            (Outcome::Completed, _) => StatsOutcome::Completed,
            (_, JobState::Discarded) => StatsOutcome::Discarded,
            (_, JobState::Cancelled) => StatsOutcome::Cancelled,
            (Outcome::Failed { .. }, _) => StatsOutcome::Retried,
            (Outcome::Snoozed(_), _) => StatsOutcome::Snoozed,
            _ => return, // released: the attempt did not count
        };
        let queue = intern(&mut st.queues, queue, usize::MAX);
        let cell = st.cells.entry((minute_of(Utc::now()), queue, kind, counted)).or_default();
        cell.n += 1;
        cell.queue_time.record(wait);
        cell.version += 1;
    }

    /// An attempt's outcome will not be written by this worker (stale).
    pub fn forget(&self, lease: Lease) {
        self.state().started.remove(&lease);
    }

    /// The cells changed since their last write, as rows, with the versions
    /// read.
    fn changed(&self) -> (StatsRows, Vec<(Key, u64)>) {
        let st = self.state();
        let mut rows = StatsRows::default();
        let mut keys = Vec::new();
        for (key, cell) in st.cells.iter().filter(|(_, c)| c.version != c.written) {
            rows.minutes.push(DateTime::from_timestamp(key.0, 0).unwrap_or_default());
            rows.queues.push(key.1.to_string());
            rows.kinds.push(key.2.to_string());
            rows.outcomes.push(key.3.as_str());
            rows.counts.push(cell.n);
            rows.hists.push(cell.queue_time.to_literal());
            keys.push((key.clone(), cell.version));
        }
        (rows, keys)
    }

    /// Records what was written, and drops the minutes that are over and
    /// written, or too old to write.
    fn written(&self, keys: &[(Key, u64)], now: DateTime<Utc>) {
        let mut st = self.state();
        for (key, version) in keys {
            if let Some(c) = st.cells.get_mut(key) {
                c.written = *version;
            }
        }
        let this_minute = minute_of(now);
        let too_old = now.timestamp() - STATS_UNWRITTEN_KEEP.as_secs() as i64;
        st.cells.retain(|k, c| k.0 >= this_minute || (c.version != c.written && k.0 >= too_old));
    }
}

/// The statistics writer, a [`Service`]: writes this worker's changed
/// minutes every [`STATS_FLUSH_INTERVAL`], and once more when it stops (at
/// shutdown, after the completer wrote the last outcomes).
pub(crate) struct StatsWriter {
    db: Db,
    worker_id: String,
    recorder: Arc<Recorder>,
}

impl StatsWriter {
    pub fn new(db: Db, worker_id: String, recorder: Arc<Recorder>) -> Self {
        StatsWriter { db, worker_id, recorder }
    }

    /// Writes the cells changed since the last write; how many rows.
    async fn flush(&self) -> Result<usize> {
        let (rows, keys) = self.recorder.changed();
        if !keys.is_empty() {
            let conn = self.db.conn().await?;
            db::insights::stats_write(conn.on(), &self.worker_id, &rows).await?;
        }
        self.recorder.written(&keys, Utc::now());
        Ok(keys.len())
    }
}

impl Service for StatsWriter {
    const NAME: &'static str = "stats_writer";
    /// Rows written.
    type Report = usize;

    /// One write, bounded by [`STATS_FLUSH_INTERVAL`]: what it could not
    /// write stays for the next pass.
    async fn run_once(&self) -> Result<Option<usize>> {
        match tokio::time::timeout(STATS_FLUSH_INTERVAL, self.flush()).await {
            Ok(written) => written.map(Some),
            Err(_) => Err(Error::Timeout { after: STATS_FLUSH_INTERVAL }),
        }
    }

    fn next_pass(&self, _last: &Result<Option<usize>>) -> Duration {
        STATS_FLUSH_INTERVAL
    }

    async fn stopped(&self) {
        if let Err(e) = self.run_once().await {
            tracing::debug!(error = %e, "statistics not written at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_counted_per_minute_and_forgotten_once_written() {
        let r = Recorder::default();
        let mut job = ClaimedJob::for_test(1);
        job.run_at = job.attempted_at - chrono::TimeDelta::milliseconds(40);
        // 40 ms to the claim, 60 more waiting for a slot.
        r.started(&job, Duration::from_millis(60));
        r.finished(job.lease, "default", &Outcome::Completed, JobState::Completed);
        r.finished(job.lease, "default", &Outcome::Completed, JobState::Completed); // once only
        let (rows, keys) = r.changed();
        assert_eq!(rows.counts, vec![1]);
        assert_eq!(rows.outcomes, vec!["completed"]);
        assert_eq!(rows.kinds, vec!["test"]);
        let ms = QueueTimeHistogram::from_buckets(
            rows.hists[0].trim_matches(['{', '}']).split(',').map(|n| n.parse().unwrap()).collect(),
        )
        .percentile(0.5)
        .unwrap()
        .as_millis();
        assert!((90..=110).contains(&ms), "{ms}");
        // Written: nothing changed since, and the minute is kept until over.
        r.written(&keys, Utc::now());
        assert!(r.changed().1.is_empty());
        r.written(&[], Utc::now() + chrono::TimeDelta::seconds(120));
        assert!(r.state().cells.is_empty());
    }

    #[test]
    fn kinds_past_the_limit_count_as_other() {
        let mut set = HashSet::new();
        for i in 0..STATS_KINDS_MAX {
            intern(&mut set, &format!("k{i}"), STATS_KINDS_MAX);
        }
        assert_eq!(&*intern(&mut set, "one-more", STATS_KINDS_MAX), "other");
        assert_eq!(&*intern(&mut set, "k3", STATS_KINDS_MAX), "k3");
    }
}
