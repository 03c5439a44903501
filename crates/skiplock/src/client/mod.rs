//! [`Client`]: the handle a service keeps to enqueue jobs, drive their
//! lifecycle and act on them as an operator. Cheap to clone. It is the
//! public facade over the crate's database handle (`db::Db`), which it
//! shares with the worker runtime and the maintenance services; it adds the
//! checks of what callers hand in and the NOTIFY rate limit.
//!
//! - `facade.rs`: [`Client`] itself, its schema, pool and migrations.
//! - `builder.rs`: [`ClientBuilder`], the connections' settings.
//! - `enqueue.rs`: what a caller enqueues ([`NewJob`], [`EnqueueOptions`]),
//!   checked and laid out as columns, and the `enqueue*` calls.
//! - `coalesce.rs`: concurrent single enqueues sharing statements.
//! - `wakeups.rs`: the NOTIFY rate limit.
//! - `lifecycle.rs`: claim, finish, heartbeat, rescue, promote by hand.
//! - `admin.rs`: what an operator looks at and does.
//! - `insights.rs`: what a dashboard reads and does (the job search, bulk
//!   actions, workers, queue depth, statistics, periodic jobs' switches).

mod admin;
mod builder;
mod coalesce;
mod depth_gauges;
pub(crate) mod enqueue;
mod facade;
pub mod health;
mod insights;
mod lifecycle;
#[cfg(feature = "sqlx")]
mod sqlx;
mod wakeups;

pub use admin::{
    CancelResult, JobFilter, LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX, LeaderInfo, PeriodicInfo, QueueInfo, QueueStats,
};
pub use builder::ClientBuilder;
pub use depth_gauges::DepthGauges;
pub use enqueue::{EnqueueOptions, NewJob};
pub use facade::{Client, Executor, POOL_SIZE_DEFAULT, POOL_TIMEOUT_DEFAULT, STATEMENT_TIMEOUT_DEFAULT};
pub use insights::{
    ArgsFilter, BULK_BATCH, BULK_MAX_DEFAULT, BulkAction, BulkReport, COUNT_CAP_DEFAULT, JobCount, JobPage, JobSearch,
    PeriodicEntry, QUEUE_TIME_BUCKETS, QUEUE_TIME_BUCKETS_PER_DOUBLING, QueueDepth, QueueSummary, QueueTimeHistogram,
    SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX, StatsOutcome, StatsPoint, StatsResolution, WorkerInfo,
};
pub use lifecycle::{FinishReport, HeartbeatReport, PromoteReport, RescueReport};
pub use wakeups::NOTIFY_INTERVAL_DEFAULT;
