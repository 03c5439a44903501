//! The benchmark's database: a skiplock schema of its own, recreated for
//! each workload and emptied between runs, and the statements that prepare
//! and check a run. Every statement is a `.sql` file in `db/`.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};
use skiplock::{Client, ClientBuilder};

/// The skiplock schema the benchmark works in (dropped and recreated).
pub const SCHEMA: &str = "skiplock_bench";
/// The queue every benchmark job goes to.
pub const QUEUE: &str = "bench";
/// The `application_name` of every benchmark connection.
const APPLICATION: &str = "skiplock-bench";

/// A connection for set-up and measurement, and what is needed to open more.
pub struct Db {
    url: String,
    admin: tokio_postgres::Client,
    /// Set once CHECKPOINT was refused (not a superuser): skipped after.
    no_checkpoint: AtomicBool,
}

/// What to count.
#[derive(Debug, Clone, Copy)]
pub enum Count {
    /// Rows in the hot table (unfinished jobs).
    Hot,
    /// Rows in the archive (finished jobs).
    Archived,
    /// Jobs ready to claim.
    Available,
}

impl Db {
    /// Connects to `url`.
    pub async fn connect(url: &str) -> Result<Db> {
        let admin = connect(url).await?;
        Ok(Db { url: url.to_owned(), admin, no_checkpoint: AtomicBool::new(false) })
    }

    /// The set-up connection.
    pub fn admin(&self) -> &tokio_postgres::Client {
        &self.admin
    }

    /// A new connection of its own, with the session settings the library's
    /// connections have (jit off), for the ceiling's bare SQL.
    pub async fn connect_raw(&self) -> Result<tokio_postgres::Client> {
        connect(&self.url).await
    }

    /// A skiplock client on the benchmark's schema with up to `pool_size`
    /// connections.
    pub fn client(&self, pool_size: usize) -> Result<Client> {
        Ok(self.builder(pool_size)?.build()?)
    }

    /// The settings of [`Db::client`], to change some before building.
    pub fn builder(&self, pool_size: usize) -> Result<ClientBuilder> {
        Ok(Client::builder(&self.url).schema(SCHEMA)?.pool_size(pool_size).application_name(APPLICATION))
    }

    /// Drops the benchmark's schema and migrates a fresh one.
    pub async fn reset(&self) -> Result<()> {
        self.drop_schema().await?;
        self.client(1)?.migrate().await.context("cannot migrate the benchmark schema")?;
        Ok(())
    }

    /// Drops the benchmark's schema.
    pub async fn drop_schema(&self) -> Result<()> {
        self.admin.batch_execute(include_str!("db/drop.sql")).await?;
        Ok(())
    }

    /// Empties the queue and its archive.
    pub async fn truncate(&self) -> Result<()> {
        self.admin.batch_execute(include_str!("db/truncate.sql")).await?;
        Ok(())
    }

    /// Prepares a timed run: vacuums and analyzes the hot table, then
    /// checkpoints so no checkpoint is due in the middle of the run.
    pub async fn settle(&self) -> Result<()> {
        self.admin.batch_execute(include_str!("db/vacuum.sql")).await?;
        self.checkpoint().await
    }

    /// Checkpoints, if allowed (superuser or `pg_checkpoint`); says once
    /// when not.
    pub async fn checkpoint(&self) -> Result<()> {
        if self.no_checkpoint.load(Ordering::Relaxed) {
            return Ok(());
        }
        if let Err(e) = self.admin.batch_execute(include_str!("db/checkpoint.sql")).await {
            if e.code() != Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) {
                return Err(e.into());
            }
            self.no_checkpoint.store(true, Ordering::Relaxed);
            eprintln!("note: CHECKPOINT is not allowed for this user; runs start without one");
        }
        Ok(())
    }

    /// Counts jobs.
    pub async fn count(&self, what: Count) -> Result<i64> {
        let sql = match what {
            Count::Hot => include_str!("db/hot_count.sql"),
            Count::Archived => include_str!("db/archived_count.sql"),
            Count::Available => include_str!("db/available_count.sql"),
        };
        Ok(self.admin.query_one(sql, &[]).await?.get(0))
    }
}

/// Connects to `url` with jit off, as the library's pool does, and its TLS.
async fn connect(url: &str) -> Result<tokio_postgres::Client> {
    let (mut cfg, tls) = skiplock::TlsConfig::from_url(url).context("invalid --database-url")?;
    let options = match cfg.get_options() {
        Some(o) => format!("{o} -c jit=off"),
        None => "-c jit=off".to_owned(),
    };
    cfg.options(&options).application_name(APPLICATION);
    Ok(tls.connector()?.connect(&cfg).await?)
}
