//! W1 enqueue: jobs per second through `Client::enqueue_many` (one call,
//! every job) and through one-by-one `Client::enqueue` calls from many tasks
//! at once, beside binary COPY and one INSERT per job in bare SQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use skiplock::{Client, EnqueueOptions, NewJob};
use tokio::task::JoinSet;

use super::ceiling::Ceiling;
use super::db::Db;
use super::report::{Row, Section, Unit, thousands};
use super::worker::Noop;
use super::{Scale, progress, rate};

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let (bulk_n, each_n, tasks) = (scale.enqueue_bulk, scale.enqueue_each, scale.enqueue_tasks);
    let ceiling = Ceiling::create(db).await?;
    let client = db.client(tasks)?;
    warm(&client, tasks).await?;
    let alone = db.builder(tasks)?.combine_enqueues(false).build()?;
    warm(&alone, tasks).await?;
    let (mut bulk, mut each, mut each_alone, mut copy) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut insert, mut insert_notify) = (Vec::new(), Vec::new());
    for run in 1..=scale.runs {
        progress(&format!(
            "W1 run {run}/{}: enqueue_many, enqueue from {tasks} tasks (combined, alone), COPY, INSERT, INSERT + NOTIFY",
            scale.runs
        ));
        db.truncate().await?;
        db.settle().await?;
        bulk.push(rate(bulk_n, enqueue_many(&client, bulk_n).await?));
        db.truncate().await?;
        db.settle().await?;
        each.push(rate(each_n, enqueue_each(&client, each_n, tasks).await?));
        db.truncate().await?;
        db.settle().await?;
        each_alone.push(rate(each_n, enqueue_each(&alone, each_n, tasks).await?));
        ceiling.truncate().await?;
        ceiling.settle().await?;
        copy.push(rate(bulk_n, ceiling.copy(bulk_n).await?));
        ceiling.truncate().await?;
        ceiling.settle().await?;
        insert.push(rate(each_n, ceiling.insert_each(each_n, tasks, false).await?));
        ceiling.truncate().await?;
        ceiling.settle().await?;
        insert_notify.push(rate(each_n, ceiling.insert_each(each_n, tasks, true).await?));
    }
    let mut s = Section::new(
        "w1",
        "enqueue",
        format!(
            "{} jobs in one enqueue_many call (one connection), and {} enqueue calls from {tasks} tasks \
             sharing a pool of {tasks}; each on an emptied, vacuumed queue after a checkpoint. Args are a \
             one-field JSON object; building the jobs is part of the time.",
            thousands(bulk_n as i64),
            thousands(each_n as i64)
        ),
        scale.runs,
    );
    s.rows.push(
        Row::new(format!("enqueue_many x{}", thousands(bulk_n as i64)), "throughput", Unit::JobsPerSec, bulk)
            .against(copy)
            .note("ceiling: one binary COPY, 1 connection"),
    );
    s.rows.push(
        Row::new(format!("enqueue x{}, {tasks} tasks", thousands(each_n as i64)), "throughput", Unit::JobsPerSec, each)
            .against(insert.clone())
            .note(format!("ceiling: one INSERT per job, {tasks} connections; concurrent calls share statements")),
    );
    s.rows.push(
        Row::new(
            format!("enqueue x{}, {tasks} tasks, each alone", thousands(each_n as i64)),
            "throughput",
            Unit::JobsPerSec,
            each_alone,
        )
        .against(insert)
        .note("combine_enqueues(false): a statement and a commit per call"),
    );
    s.rows.push(
        Row::new(
            format!("ceiling: INSERT + NOTIFY x{}", thousands(each_n as i64)),
            "throughput",
            Unit::JobsPerSec,
            insert_notify,
        )
        .note(format!("bare SQL, {tasks} connections: what a NOTIFY per commit costs")),
    );
    s.notes.push(
        "ratio = skiplock / ceiling. The ceiling's table has the primary key and the claim index only and \
         its INSERT sends no NOTIFY; skiplock's table has three more partial indexes (which these jobs do \
         not enter) and its insert statement sends one NOTIFY per queue."
            .into(),
    );
    Ok(s)
}

/// Opens `n` of the pool's connections, so no timed run pays for opening
/// them (the ceiling's connections are open before its clock starts too).
pub async fn warm(client: &Client, n: usize) -> Result<()> {
    Ok(client.warm_up(n).await?)
}

/// Jobs `0..n`, built as a caller would.
pub fn jobs(range: std::ops::Range<u64>) -> Result<Vec<NewJob>> {
    Ok(range.map(|i| NewJob::typed(&Noop { i }, EnqueueOptions::new())).collect::<Result<_, _>>()?)
}

/// Builds `n` jobs and enqueues them in one `enqueue_many` call.
async fn enqueue_many(client: &Client, n: u64) -> Result<Duration> {
    let started = Instant::now();
    let done = client.enqueue_many(jobs(0..n)?).await?;
    let took = started.elapsed();
    ensure!(done.len() as u64 == n, "enqueue_many returned {} results for {n} jobs", done.len());
    Ok(took)
}

/// Enqueues `n` jobs one call each from `tasks` tasks at once.
async fn enqueue_each(client: &Client, n: u64, tasks: usize) -> Result<Duration> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..tasks {
        let (client, next) = (client.clone(), next.clone());
        set.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, skiplock::Error>(());
                }
                client.enqueue(&Noop { i }, EnqueueOptions::new()).await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(started.elapsed())
}
