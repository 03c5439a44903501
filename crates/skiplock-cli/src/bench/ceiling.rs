//! The ceiling: the bare SQL of a SKIP LOCKED queue, no library at all, run
//! from the same number of connections as skiplock used, on the same server
//! in the same run. Binary COPY and one INSERT per job for enqueue; a claim
//! of 100 by `UPDATE … RETURNING`, then one finish per batch (by DELETE, or
//! by moving the rows to an archive as skiplock does) for draining. The
//! statements are the `.sql` files in `ceiling/`.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use skiplock::Job as _;
use tokio::task::JoinSet;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{Json, Type};

use super::db::{self, Db};
use super::worker::Noop;

/// Jobs one claim takes.
pub const CLAIM_BATCH: i64 = 100;

/// How a drained job is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `DELETE … WHERE id = ANY($1)`: the least a queue can do.
    Delete,
    /// `DELETE … RETURNING` into an archive table, as skiplock does.
    Archive,
}

impl Finish {
    /// Both, in the order they are run and reported.
    pub const ALL: [Finish; 2] = [Finish::Delete, Finish::Archive];

    /// The statement.
    fn sql(self) -> &'static str {
        match self {
            Finish::Delete => include_str!("ceiling/finish_delete.sql"),
            Finish::Archive => include_str!("ceiling/finish_archive.sql"),
        }
    }

    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Finish::Delete => "claim 100 + DELETE",
            Finish::Archive => "claim 100 + move to archive",
        }
    }
}

/// The ceiling's tables in the benchmark's database.
pub struct Ceiling<'a> {
    db: &'a Db,
}

impl<'a> Ceiling<'a> {
    /// Creates the ceiling's schema afresh.
    pub async fn create(db: &'a Db) -> Result<Ceiling<'a>> {
        db.admin().batch_execute(include_str!("ceiling/schema.sql")).await?;
        Ok(Ceiling { db })
    }

    /// Drops the ceiling's schema.
    pub async fn drop_schema(db: &Db) -> Result<()> {
        db.admin().batch_execute(include_str!("ceiling/drop.sql")).await?;
        Ok(())
    }

    /// Empties the queue and its archive.
    pub async fn truncate(&self) -> Result<()> {
        self.db.admin().batch_execute(include_str!("ceiling/truncate.sql")).await?;
        Ok(())
    }

    /// Prepares a timed run as [`Db::settle`] does for skiplock's table.
    pub async fn settle(&self) -> Result<()> {
        self.db.admin().batch_execute(include_str!("ceiling/vacuum.sql")).await?;
        self.db.checkpoint().await
    }

    /// Enqueues `n` jobs with one binary COPY on one connection; returns
    /// the time from the COPY's start to its end (the connection is open
    /// before). Serialising the args is part of the time, as it is for
    /// `enqueue_many`.
    pub async fn copy(&self, n: u64) -> Result<Duration> {
        let conn = self.db.connect_raw().await?;
        let started = Instant::now();
        let sink = conn.copy_in(include_str!("ceiling/copy.sql")).await?;
        let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::TEXT, Type::TEXT, Type::JSONB]));
        for i in 0..n {
            writer.as_mut().write(&[&db::QUEUE, &Noop::KIND, &Json(Noop { i })]).await?;
        }
        let rows = writer.as_mut().finish().await?;
        let took = started.elapsed();
        ensure!(rows == n, "the ceiling's COPY wrote {rows} rows, not {n}");
        Ok(took)
    }

    /// Enqueues `n` jobs one INSERT (and transaction) each, from `conns`
    /// connections at once, each INSERT with a NOTIFY if `notify`; returns
    /// the time from the first INSERT to the last (connections are open and
    /// statements prepared before).
    pub async fn insert_each(&self, n: u64, conns: usize, notify: bool) -> Result<Duration> {
        let sql = if notify { include_str!("ceiling/insert_notify.sql") } else { include_str!("ceiling/insert.sql") };
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns {
            let c = self.db.connect_raw().await?;
            let stmt = c.prepare(sql).await?;
            clients.push((c, stmt));
        }
        let next = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for (c, stmt) in clients {
            let next = next.clone();
            tasks.spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return Ok::<_, tokio_postgres::Error>(());
                    }
                    c.query(&stmt, &[&db::QUEUE, &Noop::KIND, &Json(Noop { i })]).await?;
                }
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        Ok(started.elapsed())
    }

    /// Works off every queued job from `conns` connections, each claiming
    /// [`CLAIM_BATCH`] at a time and finishing the batch with `finish`,
    /// until its claims come back empty. Returns the time taken and how
    /// many jobs were finished.
    pub async fn drain(&self, conns: usize, finish: Finish) -> Result<(Duration, u64)> {
        let mut clients = Vec::with_capacity(conns);
        for _ in 0..conns {
            let c = self.db.connect_raw().await?;
            let claim = c.prepare(include_str!("ceiling/claim.sql")).await?;
            let done = c.prepare(finish.sql()).await?;
            clients.push((c, claim, done));
        }
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for (c, claim, done) in clients {
            tasks.spawn(async move {
                let mut finished = 0u64;
                loop {
                    let rows = c.query(&claim, &[&db::QUEUE, &CLAIM_BATCH]).await?;
                    if rows.is_empty() {
                        return Ok::<_, tokio_postgres::Error>(finished);
                    }
                    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
                    finished += c.execute(&done, &[&ids]).await?;
                }
            });
        }
        let mut total = 0;
        while let Some(r) = tasks.join_next().await {
            total += r??;
        }
        Ok((started.elapsed(), total))
    }
}
