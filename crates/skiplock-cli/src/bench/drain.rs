//! W2 drain: a queue of no-op jobs worked off by the real worker runtime at
//! several concurrencies, timed until every job is completed and its outcome
//! written; beside the ceiling's claim-100-and-finish loop in bare SQL from
//! as many connections as the worker's pool opened. Completion both ways:
//! the default (completed jobs move to the archive) against the archiving
//! ceiling, and `keep_completed(false)` (deleted) against the deleting one.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use super::ceiling::{Ceiling, Finish};
use super::db::{Count, Db};
use super::enqueue::jobs;
use super::report::{Row, Section, Unit, thousands};
use super::stats::Measure;
use super::{Scale, progress, rate, worker};

/// The longest a drain may take before the run fails.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1800);
/// The concurrency at which completed jobs are also deleted rather than
/// archived (the target is set at this concurrency).
const DELETE_AT: usize = 100;

/// One way of draining: slots, and whether completed jobs are archived.
#[derive(Debug, Clone, Copy)]
struct Case {
    concurrency: usize,
    finish: Finish,
}

impl Case {
    fn label(self) -> String {
        match self.finish {
            Finish::Archive => format!("concurrency {}", self.concurrency),
            Finish::Delete => format!("concurrency {}, keep_completed(false)", self.concurrency),
        }
    }
}

/// What one case measured over the runs.
#[derive(Default, Clone)]
struct Samples {
    rate: Vec<f64>,
    wall: Vec<f64>,
    per_claim: Vec<f64>,
}

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let n = scale.drain_jobs;
    let ceiling = Ceiling::create(db).await?;
    let client = db.client(skiplock::POOL_SIZE_DEFAULT)?;
    let mut cases: Vec<Case> =
        scale.drain_concurrency.iter().map(|&concurrency| Case { concurrency, finish: Finish::Archive }).collect();
    cases.push(Case { concurrency: DELETE_AT, finish: Finish::Delete });
    let mut by_case = vec![Samples::default(); cases.len()];
    let mut ceilings = [Vec::new(), Vec::new()];
    let (mut conns, mut lost) = (1, 0);
    for run in 1..=scale.runs {
        for (k, &case) in cases.iter().enumerate() {
            progress(&format!("W2 run {run}/{}: {} jobs, {}", scale.runs, thousands(n as i64), case.label()));
            db.truncate().await?;
            client.enqueue_many(jobs(0..n)?).await?;
            db.settle().await?;
            let started = Instant::now();
            let keep = case.finish == Finish::Archive;
            let w = worker::start_with(db, client.clone(), case.concurrency, keep).await?;
            let done = w.wait_for(db, n, DRAIN_TIMEOUT).await?;
            let took = started.elapsed();
            lost += w.lost();
            let (claims, claimed) = w.claims();
            w.stop().await;
            ensure!(done, "the worker did not finish {n} jobs within {DRAIN_TIMEOUT:?} ({})", case.label());
            let left = db.count(Count::Hot).await?;
            ensure!(left == 0, "{left} jobs are still in the hot table after the drain");
            conns = conns.max(client.pool_status().0);
            let s = &mut by_case[k];
            s.rate.push(rate(n, took));
            s.wall.push(took.as_secs_f64());
            s.per_claim.push(claimed as f64 / claims.max(1) as f64);
        }
        for (j, finish) in Finish::ALL.into_iter().enumerate() {
            progress(&format!("W2 run {run}/{}: ceiling, {}, {conns} connections", scale.runs, finish.label()));
            ceiling.truncate().await?;
            ceiling.copy(n).await?;
            ceiling.settle().await?;
            let (took, done) = ceiling.drain(conns, finish).await?;
            ensure!(done == n, "the ceiling finished {done} jobs of {n}");
            ceilings[j].push(rate(n, took));
        }
    }
    let [delete, archive] = ceilings;
    let mut s = Section::new(
        "w2",
        "drain",
        format!(
            "{} no-op jobs queued (enqueue_many, then VACUUM ANALYZE and CHECKPOINT), then worked by \
             skiplock::Worker on one queue; wall time from starting the worker until every job's outcome \
             is written (the last Finished event) and the hot table is empty.",
            thousands(n as i64)
        ),
        scale.runs,
    );
    for (case, m) in cases.iter().zip(by_case) {
        let ceiling = if case.finish == Finish::Archive { &archive } else { &delete };
        let per_claim = Measure::of(m.per_claim).median;
        s.rows.push(
            Row::new(case.label(), "throughput", Unit::JobsPerSec, m.rate)
                .against(ceiling.clone())
                .note(format!("vs {}; {per_claim:.1} jobs per claim", case.finish.label())),
        );
        s.rows.push(Row::new(case.label(), "wall time", Unit::Seconds, m.wall));
    }
    s.rows.push(Row::new(format!("ceiling: {}", Finish::Delete.label()), "throughput", Unit::JobsPerSec, delete));
    s.rows.push(Row::new(format!("ceiling: {}", Finish::Archive.label()), "throughput", Unit::JobsPerSec, archive));
    s.notes.push(format!(
        "ratio = skiplock / the ceiling that finishes the same way: moving rows to an archive (skiplock's \
         default) or deleting them (keep_completed(false)). The ceiling runs from {conns} connections, as \
         many as the worker's pool opened, each claiming 100 and then finishing them."
    ));
    if lost > 0 {
        s.notes.push(format!("the event tally fell behind ({lost} events lost): those runs counted rows"));
    }
    Ok(s)
}
