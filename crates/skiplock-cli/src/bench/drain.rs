//! W2 drain: a queue of no-op jobs worked off by the real worker runtime at
//! several concurrencies, timed until every job is completed and its outcome
//! written; beside the ceiling's claim-100-and-finish loop in bare SQL from
//! as many connections as the worker's pool opened.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use super::ceiling::{Ceiling, Finish};
use super::db::{Count, Db};
use super::enqueue::jobs;
use super::report::{Row, Section, Unit, thousands};
use super::{Scale, progress, rate, worker};

/// The longest a drain may take before the run fails.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1800);

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let n = scale.drain_jobs;
    let ceiling = Ceiling::create(db).await?;
    let client = db.client(skiplock::POOL_SIZE_DEFAULT)?;
    let levels = &scale.drain_concurrency;
    let mut rates = vec![Vec::new(); levels.len()];
    let mut walls = vec![Vec::new(); levels.len()];
    let mut per_claim = vec![Vec::new(); levels.len()];
    let mut ceilings = [Vec::new(), Vec::new()];
    let (mut conns, mut lost) = (1, 0);
    for run in 1..=scale.runs {
        for (k, &c) in levels.iter().enumerate() {
            progress(&format!("W2 run {run}/{}: {} jobs at concurrency {c}", scale.runs, thousands(n as i64)));
            db.truncate().await?;
            client.enqueue_many(jobs(0..n)?).await?;
            db.settle().await?;
            let started = Instant::now();
            let w = worker::start(db, client.clone(), c).await?;
            let done = w.wait_for(db, n, DRAIN_TIMEOUT).await?;
            let took = started.elapsed();
            lost += w.lost();
            let (claims, claimed) = w.claims();
            per_claim[k].push(claimed as f64 / claims.max(1) as f64);
            w.stop().await;
            ensure!(done, "the worker did not finish {n} jobs within {DRAIN_TIMEOUT:?} at concurrency {c}");
            let left = db.count(Count::Hot).await?;
            ensure!(left == 0, "{left} jobs are still in the hot table after the drain");
            conns = conns.max(client.pool().status().size);
            rates[k].push(rate(n, took));
            walls[k].push(took.as_secs_f64());
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
    let delete_median = super::stats::Measure::of(delete.clone()).median;
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
    for (k, &c) in levels.iter().enumerate() {
        let row = Row::new(format!("concurrency {c}"), "throughput", Unit::JobsPerSec, rates[k].clone())
            .against(archive.clone());
        let vs_delete = row.value.median / delete_median;
        let jobs_per_claim = super::stats::Measure::of(per_claim[k].clone()).median;
        s.rows.push(row.note(format!("{vs_delete:.2} of the DELETE ceiling; {jobs_per_claim:.1} jobs per claim")));
        s.rows.push(Row::new(format!("concurrency {c}"), "wall time", Unit::Seconds, walls[k].clone()));
    }
    s.rows.push(Row::new(format!("ceiling: {}", Finish::Delete.label()), "throughput", Unit::JobsPerSec, delete));
    s.rows.push(Row::new(format!("ceiling: {}", Finish::Archive.label()), "throughput", Unit::JobsPerSec, archive));
    s.notes.push(format!(
        "ratio = skiplock / the ceiling that moves finished rows to an archive, as skiplock does. The \
         ceiling runs from {conns} connections, as many as the worker's pool opened, each claiming 100 \
         and then finishing them."
    ));
    if lost > 0 {
        s.notes.push(format!("the event tally fell behind ({lost} events lost): those runs counted archived rows"));
    }
    Ok(s)
}
