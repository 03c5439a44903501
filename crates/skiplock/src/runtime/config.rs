//! What a worker runs with: its [`Config`] (built and checked by
//! `WorkerBuilder`), the queues' and handlers' settings, and the defaults.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::Backoff;
use crate::handler::ErasedHandler;

/// How long a claimed job may go without a heartbeat before the rescuer
/// takes it back: 30 seconds.
pub const LEASE_DEFAULT: Duration = Duration::from_secs(30);
/// How often idle producers poll when no NOTIFY arrives: 1 second, doubling
/// while idle up to [`POLL_INTERVAL_MAX_DEFAULT`].
pub const POLL_INTERVAL_DEFAULT: Duration = Duration::from_secs(1);
/// The longest idle poll interval: 5 seconds.
pub const POLL_INTERVAL_MAX_DEFAULT: Duration = Duration::from_secs(5);
/// Most jobs one claim takes: 500.
pub const CLAIM_BATCH_MAX_DEFAULT: usize = 500;
/// Most jobs a queue holds claimed beyond its free slots: 500. How many it
/// holds follows its jobs' mean run time (enough for about 50 ms of work),
/// so slow jobs are hardly prefetched at all.
pub const PREFETCH_DEFAULT: usize = 500;
/// The longest a job claimed ahead of a free slot waits for one before it is
/// handed back, unstarted, for any worker with room: 1 second (20 times the
/// 50 ms of work the prefetch is sized for).
pub const PREFETCH_WAIT_DEFAULT: Duration = Duration::from_secs(1);
/// The longest `prefetch_wait` a queue may be given: one hour.
pub const PREFETCH_WAIT_MAX: Duration = Duration::from_secs(3600);
/// The largest prefetch a queue may be given: 100,000 jobs.
pub const PREFETCH_MAX: usize = 100_000;
/// Most outcomes one completion statement writes: 1,000.
pub const COMPLETE_BATCH_MAX_DEFAULT: usize = 1000;
/// How long one attempt may run unless its kind or the job says otherwise:
/// 30 minutes.
pub const TIMEOUT_DEFAULT: Duration = Duration::from_secs(30 * 60);
/// How long running jobs get to finish at shutdown before they are asked to
/// stop: 30 seconds.
pub const SHUTDOWN_GRACE_DEFAULT: Duration = Duration::from_secs(30);
/// How long a handler asked to stop may take before it is dropped: 5 seconds.
pub const CANCEL_GRACE_DEFAULT: Duration = Duration::from_secs(5);
/// How long outcomes still buffered at shutdown are retried if the database
/// is away: 10 seconds. Past it their jobs are left to the rescuer.
pub const FLUSH_DEADLINE_DEFAULT: Duration = Duration::from_secs(10);

/// Where the worker listens for wake-ups.
#[derive(Debug, Clone, Default)]
pub enum Listen {
    /// On a connection made like the client's (the default), unless the
    /// client sends unnamed statements for PgBouncer, where LISTEN cannot
    /// work: then poll only, and say so once.
    #[default]
    Auto,
    /// On a direct connection to this URL (bypassing PgBouncer).
    Url(String),
    /// Never: poll only.
    Disabled,
}

/// Settings for one queue a worker serves.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// Jobs of this queue running at once in this process.
    pub concurrency: usize,
    /// Retry policy for its failed jobs (default: the worker's).
    pub backoff: Option<Backoff>,
    /// Most jobs claimed ahead of free slots (default
    /// [`PREFETCH_DEFAULT`]; 0 claims only what can start at once).
    pub prefetch: usize,
    /// The longest a job claimed ahead waits for a slot before it is handed
    /// back (default [`PREFETCH_WAIT_DEFAULT`]).
    pub prefetch_wait: Duration,
}

impl QueueConfig {
    /// A queue running up to `concurrency` jobs at once.
    pub fn new(concurrency: usize) -> Self {
        QueueConfig { concurrency, backoff: None, prefetch: PREFETCH_DEFAULT, prefetch_wait: PREFETCH_WAIT_DEFAULT }
    }
    /// Sets its retry policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
    /// Sets the most jobs claimed ahead of free slots. They wait in this
    /// process under a heartbeated lease; how many are held follows the
    /// queue's mean run time (enough for about 50 ms of work), up to this.
    /// `0` claims only what can start at once, as for jobs that must start
    /// in strict order across a fleet.
    ///
    /// ```
    /// use skiplock::QueueConfig;
    ///
    /// // Quick jobs: up to 1,000 claimed ahead of the 20 slots.
    /// let thumbnails = QueueConfig::new(20).prefetch(1_000);
    /// // One attempt each, in order: claim only what can start now.
    /// let payouts = QueueConfig::new(4).prefetch(0);
    /// # let _ = (thumbnails, payouts);
    /// ```
    pub fn prefetch(mut self, most: usize) -> Self {
        self.prefetch = most;
        self
    }
    /// Sets the longest a job claimed ahead waits for a slot. Past it, the
    /// job goes back to the queue unstarted, its attempt unused, for any
    /// worker with room, and this queue claims no more ahead until one of
    /// its jobs finishes: the run time the prefetch was sized by is out of
    /// date (quick jobs were followed by slow ones). At most
    /// [`PREFETCH_WAIT_MAX`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use skiplock::QueueConfig;
    ///
    /// // Jobs are quick, but now and then one takes minutes: let no job
    /// // wait behind them for more than 200 ms.
    /// let mixed = QueueConfig::new(8).prefetch_wait(Duration::from_millis(200));
    /// # let _ = mixed;
    /// ```
    pub fn prefetch_wait(mut self, wait: Duration) -> Self {
        self.prefetch_wait = wait;
        self
    }
}

pub(crate) struct HandlerEntry {
    pub handler: Arc<dyn ErasedHandler>,
    pub timeout: Option<Duration>,
    /// The queue a typed job's kind goes to by default (its `Job::QUEUE`);
    /// `None` for a raw handler, whose kind has no queue of its own.
    pub queue: Option<&'static str>,
}

/// Everything a worker was built with, checked by `WorkerBuilder::build`:
/// nothing here is validated again while the worker runs.
pub(crate) struct Config {
    /// The name left in `leased_by`; unique among live workers (the
    /// registry).
    pub worker_id: String,
    pub queues: Vec<(String, QueueConfig)>,
    pub handlers: HashMap<String, HandlerEntry>,
    pub fallback: Option<HandlerEntry>,
    pub backoff: Backoff,
    /// How long a claim or heartbeat leases a job. At least 100 ms.
    pub lease: Duration,
    /// The lease in milliseconds, as the statements take it.
    pub lease_ms: i64,
    pub poll_interval: Duration,
    pub poll_interval_max: Duration,
    pub claim_batch_max: usize,
    pub complete_batch_max: usize,
    pub timeout: Duration,
    pub shutdown_grace: Duration,
    pub cancel_grace: Duration,
    pub flush_deadline: Duration,
    pub keep_completed: bool,
    /// Record the leader's queue-depth count as gauges (`DepthGauges`).
    pub depth_metrics: bool,
    pub listen: Listen,
}

impl Config {
    /// Heartbeats are sent every third of a lease.
    pub fn heartbeat_interval(&self) -> Duration {
        self.lease / 3
    }
}
