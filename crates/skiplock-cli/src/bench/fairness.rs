//! W8 fairness: two workers (each with its own pool, as two processes
//! would be) on one queue of 10 ms jobs. First both start together on a
//! backlog, and each one's share of the jobs is counted; then one starts
//! alone and the second joins late, and the time from its start to its
//! first job is measured, with its share of what was left. The prefetch
//! (claims ahead of free slots) must not let one worker hoard the queue
//! (issue 11, part 2).

use std::time::Duration;

use anyhow::{Result, ensure};
use tokio::time::Instant;

use super::db::{Count, Db};
use super::enqueue::jobs;
use super::report::{Row, Section, Unit, thousands};
use super::{Scale, progress, worker};

/// Slots per worker.
const CONCURRENCY: usize = 10;
/// What each job takes.
const WORK: Duration = Duration::from_millis(10);
/// The longest a drain may take.
const WAIT_TIMEOUT: Duration = Duration::from_secs(600);
/// The late worker joins after the first has finished this share of the
/// jobs.
const JOIN_AFTER: f64 = 0.1;

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let n = scale.fairness_jobs;
    let (mut share_together, mut share_late, mut first_job) = (Vec::new(), Vec::new(), Vec::new());
    for r in 1..=scale.runs {
        progress(&format!("W8 run {r}/{}: {} jobs, two workers from the start", scale.runs, thousands(n as i64)));
        db.truncate().await?;
        db.client(4)?.enqueue_many(jobs(0..n)?).await?;
        db.settle().await?;
        let a = worker::start_working(db, db.client(skiplock::POOL_SIZE_DEFAULT)?, CONCURRENCY, WORK).await?;
        let b = worker::start_working(db, db.client(skiplock::POOL_SIZE_DEFAULT)?, CONCURRENCY, WORK).await?;
        let (fa, fb) = both_drain(db, &a, &b, n).await?;
        a.stop().await;
        b.stop().await;
        share_together.push(100.0 * fb as f64 / (fa + fb) as f64);

        progress(&format!("W8 run {r}/{}: {} jobs, the second worker joins late", scale.runs, thousands(n as i64)));
        db.truncate().await?;
        db.client(4)?.enqueue_many(jobs(0..n)?).await?;
        db.settle().await?;
        let a = worker::start_working(db, db.client(skiplock::POOL_SIZE_DEFAULT)?, CONCURRENCY, WORK).await?;
        let head = (n as f64 * JOIN_AFTER) as u64;
        ensure!(a.wait_for(db, head, WAIT_TIMEOUT).await?, "the first worker did not finish {head} jobs");
        let joined = Instant::now();
        let b = worker::start_working(db, db.client(skiplock::POOL_SIZE_DEFAULT)?, CONCURRENCY, WORK).await?;
        let (fa, fb) = both_drain(db, &a, &b, n).await?;
        let first = b.first_start().map(|t| t.duration_since(joined));
        a.stop().await;
        b.stop().await;
        ensure!(first.is_some(), "the late worker never started a job");
        first_job.push(first.unwrap_or_default().as_secs_f64() * 1e3);
        // Its share of the jobs left when it joined (the first worker's
        // head start left out).
        share_late.push(100.0 * fb as f64 / (fa + fb - head) as f64);
    }
    let mut s = Section::new(
        "w8",
        "fairness",
        format!(
            "two workers (own pools, as two processes), {CONCURRENCY} slots each, on one queue of {} jobs \
             that take {} ms each (a timer); each with the library's default prefetch. Shares count \
             finished jobs by each worker's events.",
            thousands(n as i64),
            WORK.as_millis()
        ),
        scale.runs,
    );
    s.rows.push(
        Row::new("both from the start", "second worker's share", Unit::Percent, share_together).note("target 40-60"),
    );
    s.rows.push(
        Row::new("second joins late", "time to its first job", Unit::Millis, first_job)
            .note("target: within one poll interval (1,000 ms)"),
    );
    s.rows.push(
        Row::new("second joins late", "its share of the jobs left", Unit::Percent, share_late).note("target 40-60"),
    );
    s.notes.push(format!(
        "the late worker starts once the first has finished {:.0}% of the jobs, and its share is of the \
         jobs left then.",
        JOIN_AFTER * 100.0
    ));
    Ok(s)
}

/// Waits until `a` and `b` together have finished `n` jobs since their
/// starts (each counted by its own events), and checks the hot table is
/// empty: nothing run twice, nothing left.
async fn both_drain(db: &Db, a: &worker::Running, b: &worker::Running, n: u64) -> Result<(u64, u64)> {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        // Shares need each worker's own count: rows cannot tell them apart.
        ensure!(a.lost() + b.lost() == 0, "the event tally fell behind; the shares cannot be counted");
        let (fa, fb) = (a.finished(), b.finished());
        if fa + fb >= n {
            ensure!(fa + fb == n, "{} jobs finished of {n}", fa + fb);
            let left = db.count(Count::Hot).await?;
            ensure!(left == 0, "{left} jobs are still in the hot table");
            return Ok((fa, fb));
        }
        ensure!(Instant::now() < deadline, "the workers did not finish {n} jobs within {WAIT_TIMEOUT:?}");
        // Waits on the first worker's tally, or a moment for the second's.
        let _ = a.wait_for(db, n - fb, Duration::from_millis(20)).await?;
    }
}
