//! W4 depth: claim latency and drain throughput as the backlog grows, and
//! with a million far-future jobs beside a small backlog. A queue's cost
//! must not grow with the jobs waiting in it.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use super::db::{self, Count, Db};
use super::report::{Row, Section, Unit, thousands};
use super::stats::{Measure, percentile};
use super::{Scale, progress, rate, worker};

/// Jobs one measured claim asks for.
const CLAIM_LIMIT: i64 = 100;
/// The lease of a measured claim.
const LEASE: Duration = Duration::from_secs(60);
/// The worker's slots for the drain.
const CONCURRENCY: usize = 100;
/// Jobs queued beyond what a run consumes, for the jobs a stopping worker
/// still takes.
const SLACK: u64 = 1_000;
/// Jobs per fill statement (each its own transaction).
const FILL_CHUNK: u64 = 500_000;
/// The longest a drain may take.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// One backlog to measure at.
struct Case {
    label: String,
    available: u64,
    scheduled: u64,
}

/// What one case measured over the runs.
#[derive(Default)]
struct Samples {
    claim_p50: Vec<f64>,
    claim_p99: Vec<f64>,
    drain: Vec<f64>,
}

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let mut cases: Vec<Case> = scale
        .depths
        .iter()
        .map(|&d| Case { label: format!("{} queued", thousands(d as i64)), available: d, scheduled: 0 })
        .collect();
    let smallest = scale.depths.first().copied().unwrap_or(0);
    cases.push(Case {
        label: format!("{} + {} scheduled", thousands(smallest as i64), thousands(scale.depth_scheduled as i64)),
        available: smallest,
        scheduled: scale.depth_scheduled,
    });
    let client = db.client(skiplock::POOL_SIZE_DEFAULT)?;
    let per_run = scale.depth_claims as u64 * CLAIM_LIMIT as u64 + scale.depth_drain + SLACK;
    let mut results = Vec::new();
    for (k, case) in cases.iter().enumerate() {
        // Each depth grows the backlog left by the one before; the
        // scheduled case starts afresh.
        if k == 0 || case.scheduled > 0 {
            db.truncate().await?;
        }
        if case.scheduled > 0 {
            fill(db, include_str!("depth/fill_scheduled.sql"), case.scheduled, "scheduled").await?;
        }
        let mut m = Samples::default();
        for run in 1..=scale.runs {
            let have = db.count(Count::Available).await? as u64;
            fill(
                db,
                include_str!("depth/fill_available.sql"),
                (case.available + per_run).saturating_sub(have),
                "available",
            )
            .await?;
            db.settle().await?;
            progress(&format!(
                "W4 run {run}/{}: {}: {} claims of {CLAIM_LIMIT}",
                scale.runs, case.label, scale.depth_claims
            ));
            let lat = claims(&client, scale.depth_claims).await?;
            m.claim_p50.push(percentile(&lat, 0.5).unwrap_or(f64::NAN));
            m.claim_p99.push(percentile(&lat, 0.99).unwrap_or(f64::NAN));
            progress(&format!(
                "W4 run {run}/{}: {}: drain {} jobs",
                scale.runs,
                case.label,
                thousands(scale.depth_drain as i64)
            ));
            let started = Instant::now();
            let w = worker::start(db, client.clone(), CONCURRENCY).await?;
            let done = w.wait_for(db, scale.depth_drain, DRAIN_TIMEOUT).await?;
            let took = started.elapsed();
            w.stop().await;
            ensure!(done, "the worker did not finish {} jobs within {DRAIN_TIMEOUT:?}", scale.depth_drain);
            m.drain.push(rate(scale.depth_drain, took));
        }
        results.push(m);
    }
    let mut s = Section::new(
        "w4",
        "depth",
        format!(
            "Backlogs of no-op jobs written server-side (generate_series), vacuumed and analyzed. Per run: \
             {} claims of {CLAIM_LIMIT} through Client::claim (each completed before the next; latency is \
             the claim's round trip), then skiplock::Worker at concurrency {CONCURRENCY} drains {} jobs. \
             The backlog is topped up before each run so it never falls below its size while measured.",
            scale.depth_claims,
            thousands(scale.depth_drain as i64)
        ),
        scale.runs,
    );
    let base = &results[0];
    let base = (
        Measure::of(base.claim_p50.clone()).median,
        Measure::of(base.claim_p99.clone()).median,
        Measure::of(base.drain.clone()).median,
    );
    for (case, m) in cases.iter().zip(results) {
        s.rows.push(Row::new(&case.label, "claim p50", Unit::Millis, m.claim_p50).ratio_to(base.0));
        s.rows.push(Row::new(&case.label, "claim p99", Unit::Millis, m.claim_p99).ratio_to(base.1));
        s.rows.push(Row::new(&case.label, "drain", Unit::JobsPerSec, m.drain).ratio_to(base.2));
    }
    s.notes.push(format!(
        "ratio = this backlog's figure / the {}-job backlog's (target: claim latency at most 1.5x). \
         There is no separate ceiling here; W2's applies to the drain figures.",
        thousands(smallest as i64)
    ));
    Ok(s)
}

/// Queues `n` jobs with `sql` in statements of [`FILL_CHUNK`].
async fn fill(db: &Db, sql: &str, n: u64, what: &str) -> Result<()> {
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(FILL_CHUNK);
        db.admin().execute(sql, &[&(chunk as i64)]).await?;
        done += chunk;
        if n > FILL_CHUNK {
            progress(&format!("W4 set-up: {} of {} {what} jobs written", thousands(done as i64), thousands(n as i64)));
        }
    }
    Ok(())
}

/// Runs `k` claims of [`CLAIM_LIMIT`], completing each batch before the
/// next claim; returns each claim's round trip in milliseconds.
async fn claims(client: &skiplock::Client, k: usize) -> Result<Vec<f64>> {
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        let started = Instant::now();
        let jobs = client.claim(db::QUEUE, CLAIM_LIMIT, LEASE, "skiplock-bench").await?;
        out.push(started.elapsed().as_secs_f64() * 1000.0);
        ensure!(jobs.len() as i64 == CLAIM_LIMIT, "a claim returned {} jobs, not {CLAIM_LIMIT}", jobs.len());
        let leases: Vec<_> = jobs.iter().map(|j| j.lease).collect();
        client.complete(&leases).await?;
    }
    Ok(out)
}
