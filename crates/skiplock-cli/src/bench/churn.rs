//! W5 churn: the hot table's size while many jobs pass through it. A worker
//! with its maintenance (leader, vacuum, retention) runs throughout while a
//! feeder keeps a steady backlog; the table (heap and indexes) is measured
//! every tenth of the way. Finished rows leave for the archive and vacuum
//! reclaims their space, so the size must follow the backlog, not the
//! number of jobs processed.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use super::db::Db;
use super::enqueue::jobs;
use super::report::{Row, Section, Unit, thousands};
use super::{Scale, progress, worker};

/// The worker's slots.
const CONCURRENCY: usize = 100;
/// Measurements over the run (one every tenth of the jobs).
const STEPS: u64 = 10;
/// The longest wait for the worker to catch up with the feeder.
const WAIT_TIMEOUT: Duration = Duration::from_secs(600);

/// The hot table at one moment.
pub(super) struct Sizes {
    pub total: i64,
    pub heap: i64,
    pub indexes: i64,
    pub dead: i64,
    autovacuums: i64,
    vacuums: i64,
    archive: i64,
}

/// The hot table's size, dead rows and vacuums now, and the archive's size
/// (also W7's reading after each round).
pub(super) async fn sizes(db: &Db) -> Result<Sizes> {
    let r = db.admin().query_one(include_str!("churn/sizes.sql"), &[]).await?;
    Ok(Sizes {
        total: r.get(0),
        heap: r.get(1),
        indexes: r.get(2),
        dead: r.get(3),
        autovacuums: r.get(4),
        vacuums: r.get(5),
        archive: r.get(6),
    })
}

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let (total, backlog) = (scale.churn_jobs, scale.churn_backlog);
    let batch = (backlog / 4).max(1);
    let step = (total / STEPS).max(1);
    db.truncate().await?;
    db.settle().await?;
    let client = db.client(skiplock::POOL_SIZE_DEFAULT)?;
    let empty = sizes(db).await?;
    let started = Instant::now();
    let w = worker::start(db, client.clone(), CONCURRENCY).await?;
    let (mut sent, mut next) = (0u64, step);
    let mut taken: Vec<(u64, Sizes)> = Vec::new();
    while next <= total {
        let finished = w.finished_exact(db).await?;
        // Keep between backlog - batch and backlog jobs waiting.
        if sent < total && sent - finished.min(sent) + batch <= backlog {
            let n = batch.min(total - sent);
            client.enqueue_many(jobs(sent..sent + n)?).await?;
            sent += n;
            continue;
        }
        if finished >= next {
            progress(&format!("W5: {} of {} jobs processed", thousands(next as i64), thousands(total as i64)));
            taken.push((next, sizes(db).await?));
            next += step;
            continue;
        }
        // Wait for the worker to make room for the next batch, or to reach
        // the next measurement, whichever comes first.
        let room = (sent + batch).saturating_sub(backlog);
        let want = if sent < total { room.clamp(finished + 1, next) } else { next };
        ensure!(w.wait_for(db, want, WAIT_TIMEOUT).await?, "the worker stalled at {finished} jobs");
    }
    let took = started.elapsed();
    w.stop().await;
    let mut s = Section::new(
        "w5",
        "churn",
        format!(
            "skiplock::Worker (concurrency {CONCURRENCY}, maintenance and retention on, as by default) works \
             {} no-op jobs while a feeder keeps {}-{} waiting (enqueue_many of {}); the hot table's \
             pg_total_relation_size is read every {} jobs. Took {:.0}s ({} jobs/s). One run: sizes are not \
             timings.",
            thousands(total as i64),
            thousands((backlog - batch) as i64),
            thousands(backlog as i64),
            thousands(batch as i64),
            thousands(step as i64),
            took.as_secs_f64(),
            thousands((total as f64 / took.as_secs_f64()) as i64)
        ),
        1,
    );
    s.rows.push(Row::new("empty, before", "hot table", Unit::Bytes, vec![empty.total as f64]));
    let baseline = taken.first().map_or(f64::NAN, |(_, z)| z.total as f64);
    for (processed, z) in &taken {
        s.rows.push(
            Row::new(format!("after {}", thousands(*processed as i64)), "hot table", Unit::Bytes, vec![z.total as f64])
                .ratio_to(baseline)
                .note(format!(
                    "heap {:.1} MiB, indexes {:.1} MiB, {} dead rows, {} autovacuums, {} other vacuums",
                    z.heap as f64 / 1_048_576.0,
                    z.indexes as f64 / 1_048_576.0,
                    thousands(z.dead),
                    z.autovacuums,
                    z.vacuums
                )),
        );
    }
    if let Some((processed, z)) = taken.last() {
        s.rows.push(
            Row::new(format!("after {}", thousands(*processed as i64)), "archive", Unit::Bytes, vec![z.archive as f64])
                .note("retention drops whole days of archive: nothing expires within a run"),
        );
    }
    s.notes.push(format!(
        "ratio = size / the size after the first {} jobs (warm, with the backlog in place); flat means it \
         stays near 1. The last measurement is taken with the backlog worked off.",
        thousands(step as i64)
    ));
    Ok(s)
}
