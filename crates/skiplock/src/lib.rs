//! # skiplock
//!
//! A durable background-job queue for Rust services, built on PostgreSQL's
//! `SELECT … FOR UPDATE SKIP LOCKED`. If you run Postgres already, you get
//! reliable background work without adding Redis, RabbitMQ or Kafka: jobs are
//! rows, enqueued in your own transactions, claimed in batches under leases,
//! and archived when finished.
//!
//! ## Map
//!
//! | module | what lives there |
//! |---|---|
//! | [`Client`] (`client/`) | enqueue (one, many, in your transaction), the lifecycle calls, operator actions |
//! | [`Job`], [`JobState`], [`ClaimedJob`] (`job.rs`) | what a job is |
//! | [`Schema`], [`migrate`] (`schema/`) | the Postgres schema and its migrations |
//! | [`Worker`] (`worker.rs`, `runtime/`) | runs jobs: producers, executors, completer, heartbeat |
//! | [`Maintenance`], [`PeriodicJob`], [`Retention`] (`maintenance/`) | leader election; rescuer, scheduler, periodic jobs, archive partitions and retention |
//! | `db/` | every SQL statement, one `.sql` file each |
//! | [`Error`] (`error.rs`) | one error enum, classified by SQLSTATE |
//! | [`tls`] (`tls.rs`) | libpq's `sslmode` and certificate options, rustls, [`connect_raw`] |
//!
//! ## Hello, world
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use std::time::Duration;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Hello { name: String }
//! impl skiplock::Job for Hello { const KIND: &'static str = "hello"; }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = skiplock::Client::connect("postgres://localhost/app")?;
//! client.migrate().await?;
//! client.enqueue(&Hello { name: "world".into() }, Default::default()).await?;
//!
//! // A worker claims a batch under a lease, runs it, and reports back.
//! for job in client.claim("default", 10, Duration::from_secs(30), "me").await? {
//!     let hello: Hello = job.args()?;
//!     println!("hello, {}", hello.name);
//!     client.complete(&[job.lease]).await?;
//! }
//! # Ok(()) }
//! ```

mod client;
mod db;
mod error;
mod handler;
mod job;
mod maintenance;
mod metrics;
mod notify;
mod runtime;
mod schema;
#[cfg(feature = "sqlx")]
mod sqlx_support;
pub mod tls;
mod validate;
mod worker;

pub use client::redact_credentials;
pub use client::{
    CancelResult, Client, ClientBuilder, ERROR_TEXT_MAX, EnqueueOptions, Enqueued, Executor, Finish, FinishReport,
    HeartbeatReport, JobFilter, NewJob, Outcome, POOL_SIZE_DEFAULT, POOL_TIMEOUT_DEFAULT, PromoteReport, QueueInfo,
    QueueStats, RescueReport, STATEMENT_TIMEOUT_DEFAULT,
};
pub use db::StatementMode;
pub use error::{Error, Result};
pub use handler::{CancelReason, JobContext, JobError};
pub use job::{AttemptError, ClaimedJob, Job, JobRow, JobState, Lease};
pub use maintenance::{
    ANALYZE_CHANGED_MIN, ARCHIVE_AT_WINDOW, ARCHIVE_DAYS_AHEAD_DEFAULT, ARCHIVE_DAYS_AHEAD_MAX,
    ARCHIVE_INTERVAL_DEFAULT, ARCHIVE_LOCK_TIMEOUT, ArchiveReport, DEFAULT_PARTITION_PRUNE_BATCH, LEADER_LEASE_DEFAULT,
    LEADER_LEASE_MAX, LEADER_LEASE_MIN, LeaderInfo, Maintenance, MaintenanceBuilder, MaintenanceReport, Missed,
    PERIODIC_BACKFILL_MAX, PERIODIC_CHECK_MAX, PERIODIC_GRACE_DEFAULT, PERIODIC_INTERVAL_MIN, PeriodicInfo,
    PeriodicJob, PeriodicReport, PeriodicRun, RETENTION_CANCELLED_DEFAULT, RETENTION_COMPLETED_DEFAULT,
    RETENTION_DISCARDED_DEFAULT, RETENTION_MAX, Retention, UNIQUE_PRUNE_BATCH, VACUUM_CHECK_INTERVAL, VACUUM_DEAD_MIN,
};
pub use runtime::backoff::{BACKOFF_MAX_DEFAULT, Backoff, JITTER_DEFAULT};
pub use runtime::{Event, WakeSource, WorkerHandle};
pub use schema::{
    MIGRATIONS, MigrateReport, Migration, SCHEMA_DEFAULT, SCHEMA_NAME_MAX, Schema, fingerprint, migrate, migrate_to,
    version as schema_version,
};
pub use tls::{SslMode, TlsConfig, TlsConnector, connect_raw};
pub use validate::{
    ARGS_MAX_BYTES_DEFAULT, KIND_MAX, MAX_ATTEMPTS_DEFAULT, MAX_ATTEMPTS_LIMIT, META_MAX_BYTES, PRIORITY_DEFAULT,
    PRIORITY_MAX, QUEUE_DEFAULT, QUEUE_NAME_MAX, SCHEDULE_HORIZON, TAG_MAX, TAGS_MAX, UNIQUE_KEY_MAX,
    UNIQUE_PERIOD_MIN,
};
pub use worker::{
    CANCEL_GRACE_DEFAULT, CLAIM_BATCH_MAX_DEFAULT, COMPLETE_BATCH_MAX_DEFAULT, FLUSH_DEADLINE_DEFAULT, LEASE_DEFAULT,
    Listen, POLL_INTERVAL_DEFAULT, POLL_INTERVAL_MAX_DEFAULT, QueueConfig, RESCUE_INTERVAL_DEFAULT,
    SCHEDULER_INTERVAL_DEFAULT, SHUTDOWN_GRACE_DEFAULT, TIMEOUT_DEFAULT, Worker, WorkerBuilder,
};

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// docs/OPERATIONS.md's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/OPERATIONS.md")]
pub struct OperationsDoctests;

#[doc(hidden)]
pub mod __private {
    //! For skiplock's own tests: statement texts, to prepare and EXPLAIN.
    use crate::Schema;
    /// (file name, rendered SQL, parameter types) of every statement.
    pub fn statements(schema: &Schema) -> Vec<(&'static str, String, Vec<postgres_types::Type>)> {
        let s = crate::db::Statements::new(schema);
        s.all().into_iter().map(|st| (st.name, st.sql.to_string(), st.types.to_vec())).collect()
    }
}
