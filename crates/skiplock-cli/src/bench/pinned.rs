//! W7 pinned: the drain while a long transaction elsewhere pins the xmin
//! horizon (a nightly report, `pg_dump`, a session idle in a transaction):
//! two rounds unpinned, then rounds with a REPEATABLE READ transaction held
//! open on another connection, then one after it ends. Each round enqueues a
//! batch (`enqueue_many`, one commit) and times the worker's drain of it
//! from that commit; the hot table's size and dead rows are read after each
//! round. While the horizon is pinned vacuum removes nothing, so every
//! claim walks the dead index entries of the rounds before (issue 11's
//! first gap; docs/DESIGN.md, "Under a pinned horizon").

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use skiplock::Client;

use super::churn::{Sizes, sizes};
use super::db::Db;
use super::enqueue::jobs;
use super::report::{Row, Section, Unit, thousands};
use super::{Scale, progress, rate, worker};

/// The worker's slots, as the issue measured it.
const CONCURRENCY: usize = 100;
/// The longest a round's drain may take (a collapsed queue is slow, not stuck).
const WAIT_TIMEOUT: Duration = Duration::from_secs(1800);

/// One round: its label, its drain rate, the hot table after it.
struct Round {
    label: String,
    rate: f64,
    sizes: Sizes,
}

/// Enqueues `n` jobs and waits until the worker has finished them all.
async fn round(db: &Db, client: &Client, w: &worker::Running, sent: &mut u64, n: u64, label: String) -> Result<Round> {
    client.enqueue_many(jobs(*sent..*sent + n)?).await?;
    let t = Instant::now();
    *sent += n;
    ensure!(
        w.wait_for(db, *sent, WAIT_TIMEOUT).await?,
        "{label}: the worker did not drain the round within {WAIT_TIMEOUT:?}"
    );
    let took = t.elapsed();
    let r = Round { rate: rate(n, took), sizes: sizes(db).await?, label };
    progress(&format!("W7: {}: {:.0} jobs/s, {} dead rows", r.label, r.rate, thousands(r.sizes.dead)));
    Ok(r)
}

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let (n, pinned_rounds) = (scale.pinned_jobs, scale.pinned_rounds);
    db.truncate().await?;
    db.settle().await?;
    let client = db.client(skiplock::POOL_SIZE_DEFAULT)?;
    let w = worker::start(db, client.clone(), CONCURRENCY).await?;
    let mut sent = 0u64;
    let mut rounds = Vec::new();
    for i in 1..=2 {
        rounds.push(round(db, &client, &w, &mut sent, n, format!("unpinned {i}")).await?);
    }
    // The pin: a snapshot taken by the first statement of a REPEATABLE READ
    // transaction, on another table, held until the pinned rounds are done.
    let pin = db.connect_raw().await?;
    pin.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM skiplock_bench.queues").await?;
    for i in 1..=pinned_rounds {
        rounds.push(round(db, &client, &w, &mut sent, n, format!("pinned {i}")).await?);
    }
    pin.batch_execute("ROLLBACK").await?;
    rounds.push(round(db, &client, &w, &mut sent, n, "after the pin".to_owned()).await?);
    w.stop().await;

    let baseline = rounds.iter().take(2).map(|r| r.rate).fold(f64::NAN, f64::max);
    let mut s = Section::new(
        "w7",
        "pinned horizon",
        format!(
            "skiplock::Worker (concurrency {CONCURRENCY}, maintenance on) drains rounds of {} no-op jobs, each \
             enqueued in one enqueue_many and timed from its commit to the last job finished: 2 rounds, then {} \
             with a REPEATABLE READ transaction held open on another connection ({} jobs under the pin), then 1 \
             after it ends. One run: a sequence, not repeated samples.",
            thousands(n as i64),
            pinned_rounds,
            thousands((n * pinned_rounds as u64) as i64),
        ),
        1,
    );
    for r in &rounds {
        s.rows.push(Row::new(r.label.clone(), "drain", Unit::JobsPerSec, vec![r.rate]).ratio_to(baseline).note(
            format!(
                "hot table {:.1} MiB (heap {:.1}, indexes {:.1}), {} dead rows",
                r.sizes.total as f64 / 1_048_576.0,
                r.sizes.heap as f64 / 1_048_576.0,
                r.sizes.indexes as f64 / 1_048_576.0,
                thousands(r.sizes.dead)
            ),
        ));
    }
    s.notes.push(
        "ratio = the round's drain / the better unpinned round's; issue 11's goal is >= 0.7 after 1,000,000 jobs \
         under the pin, with the hot table's size bounded."
            .to_owned(),
    );
    Ok(s)
}
