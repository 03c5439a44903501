//! W3 latency: a producer enqueues at a fixed rate while a worker runs with
//! NOTIFY wake-ups; afterwards the archive tells, by the database's clock,
//! how long each job waited from its enqueue to its claim, and whether the
//! worker kept up.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, ensure};
use skiplock::{Client, EnqueueOptions};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::db::Db;
use super::enqueue::{jobs, warm};
use super::report::{Row, Section, Unit, thousands};
use super::stats::percentile;
use super::worker::{self, Noop};
use super::{Scale, progress};

/// The worker's slots.
const CONCURRENCY: usize = 100;
/// Enqueue calls in flight at once (and the producer's pool size): past
/// this the producer falls behind its rate, which the report shows.
const PRODUCER_CONNS: usize = 16;
/// How often the producer enqueues; `rate × TICK` jobs each time.
const TICK: Duration = Duration::from_millis(1);
/// After the producer stops, the worker "kept up" if the last job is done
/// within this.
const KEPT_UP_WITHIN: Duration = Duration::from_secs(1);
/// The longest wait for the worker to finish after the producer stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest wait for the worker's LISTEN connection.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// One run at one rate.
#[derive(Default, Clone)]
struct Samples {
    p50: Vec<f64>,
    p95: Vec<f64>,
    p99: Vec<f64>,
    max: Vec<f64>,
    achieved: Vec<f64>,
    call_p50: Vec<f64>,
    call_p99: Vec<f64>,
    tail: Vec<f64>,
    kept_up: usize,
}

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let producer = db.client(PRODUCER_CONNS)?;
    warm(&producer, PRODUCER_CONNS).await?;
    let worker_client = db.client(skiplock::POOL_SIZE_DEFAULT)?;
    let secs = scale.latency_secs;
    let mut by_rate = vec![Samples::default(); scale.latency_rates.len()];
    let mut lost = 0;
    for run in 1..=scale.runs {
        for (k, &rate) in scale.latency_rates.iter().enumerate() {
            progress(&format!("W3 run {run}/{}: {} jobs/s for {secs}s", scale.runs, thousands(rate as i64)));
            db.truncate().await?;
            db.settle().await?;
            let w = worker::start(db, worker_client.clone(), CONCURRENCY).await?;
            ensure!(w.wait_listening(LISTEN_TIMEOUT).await, "the worker's LISTEN connection did not come up");
            let (sent, took, calls) = produce(&producer, rate, secs).await?;
            let stopped = Instant::now();
            let done = w.wait_for(db, sent, DRAIN_TIMEOUT).await?;
            let tail = stopped.elapsed();
            lost += w.lost();
            w.stop().await;
            let row = db.admin().query_one(include_str!("latency/percentiles.sql"), &[]).await?;
            let (count, pct, max): (i64, Vec<f64>, Option<f64>) = (row.get(0), row.get(1), row.get(2));
            ensure!(!done || count as u64 == sent, "{count} of {sent} jobs are in the archive");
            let s = &mut by_rate[k];
            s.p50.push(pct[0]);
            s.p95.push(pct[1]);
            s.p99.push(pct[2]);
            s.max.push(max.unwrap_or(f64::NAN));
            s.achieved.push(sent as f64 / took.as_secs_f64());
            s.call_p50.push(percentile(&calls, 0.5).unwrap_or(f64::NAN));
            s.call_p99.push(percentile(&calls, 0.99).unwrap_or(f64::NAN));
            s.tail.push(tail.as_secs_f64());
            s.kept_up += usize::from(done && tail <= KEPT_UP_WITHIN);
        }
    }
    let mut s = Section::new(
        "w3",
        "latency",
        format!(
            "A producer enqueues at a fixed rate for {secs}s (every {}ms, rate/1000 jobs: one enqueue call, or \
             one enqueue_many for more) while skiplock::Worker runs {CONCURRENCY} slots with LISTEN/NOTIFY \
             wake-ups. Latency is attempted_at - created_at of every job, read from the archive afterwards \
             (database clock; it includes the enqueue's own commit).",
            TICK.as_millis()
        ),
        scale.runs,
    );
    for (k, &rate) in scale.latency_rates.iter().enumerate() {
        let m = &by_rate[k];
        let case = format!("{} jobs/s", thousands(rate as i64));
        s.rows.push(Row::new(&case, "p50 latency", Unit::Millis, m.p50.clone()));
        s.rows.push(Row::new(&case, "p95 latency", Unit::Millis, m.p95.clone()));
        s.rows.push(Row::new(&case, "p99 latency", Unit::Millis, m.p99.clone()));
        s.rows.push(Row::new(&case, "max latency", Unit::Millis, m.max.clone()));
        s.rows.push(
            Row::new(&case, "enqueued", Unit::JobsPerSec, m.achieved.clone())
                .ratio_to(rate as f64)
                .note("ratio = rate achieved / rate asked"),
        );
        s.rows.push(Row::new(&case, "enqueue call p50", Unit::Millis, m.call_p50.clone()));
        s.rows.push(Row::new(&case, "enqueue call p99", Unit::Millis, m.call_p99.clone()));
        s.rows.push(
            Row::new(&case, "done after stop", Unit::Seconds, m.tail.clone())
                .note(format!("kept up in {}/{} runs", m.kept_up, scale.runs)),
        );
    }
    s.notes.push(format!(
        "kept up: every job was finished within {}s of the producer's last enqueue. \"done after stop\" is \
         that time. \"enqueue call\" is the producer's round trip per call (commit included), measured in \
         the producer: a latency above it was spent waiting for the worker. There is no ceiling for latency.",
        KEPT_UP_WITHIN.as_secs()
    ));
    if lost > 0 {
        s.notes.push(format!("the event tally fell behind ({lost} events lost): those runs counted archived rows"));
    }
    Ok(s)
}

/// Enqueues at `rate` jobs/s for `secs` seconds; returns the jobs sent, the
/// time from the first enqueue to the last one's return, and each call's
/// round trip in milliseconds.
async fn produce(client: &Client, rate: u64, secs: u64) -> Result<(u64, Duration, Vec<f64>)> {
    let per_tick = (rate * TICK.as_micros() as u64 / 1_000_000).max(1);
    let tick = Duration::from_secs_f64(per_tick as f64 / rate as f64);
    let ticks = secs * rate / per_tick;
    let slots = Arc::new(Semaphore::new(PRODUCER_CONNS));
    let mut calls = JoinSet::new();
    let mut round_trips = Vec::with_capacity(ticks as usize);
    let started = Instant::now();
    for k in 0..ticks {
        tokio::time::sleep_until(started + tick * k as u32).await;
        let slot = slots.clone().acquire_owned().await?;
        let client = client.clone();
        let first = k * per_tick;
        calls.spawn(async move {
            let _slot = slot;
            let sent = Instant::now();
            if per_tick == 1 {
                client.enqueue(&Noop { i: first }, EnqueueOptions::new()).await?;
            } else {
                client.enqueue_many(jobs(first..first + per_tick)?).await?;
            }
            anyhow::Ok(sent.elapsed().as_secs_f64() * 1000.0)
        });
        while let Some(r) = calls.try_join_next() {
            round_trips.push(r??);
        }
    }
    while let Some(r) = calls.join_next().await {
        round_trips.push(r??);
    }
    Ok((ticks * per_tick, started.elapsed(), round_trips))
}
