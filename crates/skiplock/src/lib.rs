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
//! | [`Client`] (`client/`) | enqueue (one, many, in your transaction), the lifecycle calls, operator actions, the dashboard's reads ([`JobSearch`], [`QueueDepth`], [`StatsPoint`]) |
//! | [`Job`], [`JobState`], [`ClaimedJob`] (`job.rs`) | what a job is |
//! | [`Schema`], [`migrate`] (`schema/`) | the Postgres schema and its migrations |
//! | [`Worker`] (`worker.rs`, `runtime/`) | runs jobs: producers, executors, completer, heartbeat |
//! | [`Maintenance`], [`PeriodicJob`], [`Retention`] (`maintenance/`) | leader election; rescuer, scheduler, periodic jobs, archive partitions and retention |
//! | `db/` | every SQL statement, one `.sql` file each |
//! | [`Error`] (`error.rs`) | one error enum, classified by SQLSTATE |
//! | [`tls`] (`tls/`) | libpq's `sslmode` and certificate options, rustls, [`connect_raw`] |
//! | [`health`] (`client/health.rs`) | [`Client::health`]: what needs an operator's action |
//! | `metrics.rs`, `trace.rs` | the metric names (any `metrics` recorder); trace context across the queue |
//!
//! ## Features
//!
//! - `sqlx`: enqueue inside a caller's `sqlx` transaction or connection
//!   (`Client::enqueue_sqlx_tx`, `Client::enqueue_many_sqlx_tx`), with sqlx's errors classified
//!   like the others (`Error::Sqlx`).
//! - `opentelemetry`: an enqueue inside a traced span stores its W3C `traceparent` in the job's
//!   metadata, and the worker's `skiplock.job` span of each attempt continues that trace
//!   (through `tracing-opentelemetry`; install its layer as usual).
//!
//! ## Hello, world
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use skiplock::{Client, EnqueueOptions, Job, JobContext, JobError, Worker};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Hello { name: String }
//! impl Job for Hello { const KIND: &'static str = "hello"; }
//!
//! async fn hello(job: Hello, _ctx: JobContext) -> Result<(), JobError> {
//!     println!("hello, {}", job.name);
//!     Ok(())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("postgres://localhost/app")?;
//! client.migrate().await?;
//! client.enqueue(&Hello { name: "world".into() }, EnqueueOptions::new()).await?;
//!
//! // Claims batches under leases, runs handlers, writes outcomes; ctrl-c
//! // lets running jobs finish, then stops.
//! Worker::builder(client).queue("default", 10).register(hello).build()?.run_until_signal().await?;
//! # Ok(()) }
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
mod db;
mod error;
mod events;
mod handler;
mod host;
mod job;
mod maintenance;
mod metrics;
mod notify;
mod redact;
mod runtime;
mod schema;
mod service;
pub mod tls;
#[cfg(feature = "opentelemetry")]
mod trace;
mod validate;
mod worker;

pub use client::health::{self, Health, HealthLimits};
pub use client::{
    ArgsFilter, BULK_BATCH, BULK_MAX_DEFAULT, BulkAction, BulkReport, COUNT_CAP_DEFAULT, CancelResult, Client,
    ClientBuilder, DepthGauges, EnqueueOptions, Executor, FinishReport, HeartbeatReport, JobCount, JobFilter, JobPage,
    JobSearch, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, LeaderInfo, NOTIFY_INTERVAL_DEFAULT, NewJob, POOL_SIZE_DEFAULT,
    POOL_TIMEOUT_DEFAULT, PeriodicEntry, PeriodicInfo, PromoteReport, QUEUE_TIME_BUCKETS,
    QUEUE_TIME_BUCKETS_PER_DOUBLING, QueueDepth, QueueInfo, QueueStats, QueueSummary, QueueTimeHistogram, RescueReport,
    SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX, STATEMENT_TIMEOUT_DEFAULT, StatsOutcome, StatsPoint, StatsResolution,
    WorkerInfo,
};
pub use db::StatementMode;
pub use db::job::ERROR_TEXT_MAX;
pub use error::{Error, Result};
pub use events::{Event, WakeSource};
pub use handler::{CancelReason, JobContext, JobError, State};
pub use job::{AttemptError, ClaimedJob, Enqueued, Finish, Job, JobRow, JobState, Lease, Outcome};
pub use maintenance::{
    ANALYZE_CHANGED_MIN, ARCHIVE_AT_WINDOW, ARCHIVE_DAYS_AHEAD_DEFAULT, ARCHIVE_DAYS_AHEAD_MAX,
    ARCHIVE_INTERVAL_DEFAULT, ARCHIVE_LOCK_TIMEOUT, ArchiveReport, DEFAULT_PARTITION_PRUNE_BATCH, LEADER_LEASE_DEFAULT,
    LEADER_LEASE_MAX, LEADER_LEASE_MIN, Maintenance, MaintenanceBuilder, MaintenanceReport, Missed,
    PERIODIC_BACKFILL_MAX, PERIODIC_CHECK_MAX, PERIODIC_GRACE_DEFAULT, PERIODIC_INTERVAL_MIN, PeriodicJob,
    PeriodicReport, PeriodicRun, RESCUE_INTERVAL_DEFAULT, RETENTION_CANCELLED_DEFAULT, RETENTION_COMPLETED_DEFAULT,
    RETENTION_DISCARDED_DEFAULT, RETENTION_MAX, Retention, SCHEDULER_INTERVAL_DEFAULT, STATS_DEPTH_INTERVAL,
    STATS_HOUR_RETENTION, STATS_MERGE_AFTER, STATS_MERGE_INTERVAL, STATS_MINUTE_RETENTION, StatsReport,
    UNIQUE_PRUNE_BATCH, VACUUM_CHECK_INTERVAL, VACUUM_DEAD_MIN,
};
pub use redact::redact_credentials;
pub use runtime::WorkerHandle;
pub use runtime::backoff::{BACKOFF_MAX_DEFAULT, Backoff, JITTER_DEFAULT};
pub use runtime::config::{
    CANCEL_GRACE_DEFAULT, CLAIM_BATCH_MAX_DEFAULT, COMPLETE_BATCH_MAX_DEFAULT, FLUSH_DEADLINE_DEFAULT, LEASE_DEFAULT,
    Listen, POLL_INTERVAL_DEFAULT, POLL_INTERVAL_MAX_DEFAULT, PREFETCH_DEFAULT, PREFETCH_MAX, PREFETCH_WAIT_DEFAULT,
    PREFETCH_WAIT_MAX, QueueConfig, SHUTDOWN_GRACE_DEFAULT, TIMEOUT_DEFAULT,
};
pub use runtime::stats::{STATS_FLUSH_INTERVAL, STATS_KINDS_MAX, STATS_UNWRITTEN_KEEP};
pub use schema::{
    MIGRATIONS, MigrateReport, Migration, SCHEMA_DEFAULT, SCHEMA_NAME_MAX, Schema, migrate, migrate_to,
    version as schema_version,
};
pub use tls::{SslMode, TlsConfig, TlsConnector, connect_raw};
pub use validate::{
    ARGS_MAX_BYTES_DEFAULT, KIND_MAX, MAX_ATTEMPTS_DEFAULT, MAX_ATTEMPTS_LIMIT, META_MAX_BYTES, PRIORITY_DEFAULT,
    PRIORITY_MAX, QUEUE_DEFAULT, QUEUE_NAME_MAX, SCHEDULE_HORIZON, TAG_MAX, TAGS_MAX, UNIQUE_KEY_MAX,
    UNIQUE_PERIOD_MIN,
};
pub use worker::{Worker, WorkerBuilder};

// The driver crates, at the exact versions skiplock is built with: name them
// through skiplock (`skiplock::tokio_postgres::Transaction`) and there is
// never a second copy of a driver in your build.
pub use deadpool_postgres;
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
pub use sqlx;
pub use tokio_postgres;

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
    //! For skiplock's own tests: statement texts, to prepare and EXPLAIN, and
    //! the migrations' fingerprint, to name test templates.
    use crate::Schema;
    pub use crate::schema::fingerprint;
    /// (file name, rendered SQL, parameter types) of every statement.
    pub fn statements(schema: &Schema) -> Vec<(&'static str, String, Vec<postgres_types::Type>)> {
        let s = crate::db::Statements::new(schema);
        s.all().into_iter().map(|st| (st.name, st.sql.to_string(), st.types.to_vec())).collect()
    }
}
