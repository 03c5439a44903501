//! What a worker (and its maintenance) reports as it runs, for tests and
//! observers: [`Worker::subscribe`](crate::Worker::subscribe).

use chrono::{DateTime, Utc};

use crate::handler::CancelReason;
use crate::job::JobState;

/// Where a producer's wake-up came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeSource {
    /// A NOTIFY on the insert channel (a producer's enqueue, the scheduler, a
    /// retry).
    Notify,
    /// The poll interval ran out.
    Poll,
    /// The LISTEN connection came back after a loss: poll once, as
    /// notifications may have been missed.
    Reconnect,
}

/// One thing that happened in a worker.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A producer woke up to claim.
    Woken {
        /// The queue.
        queue: String,
        /// Why.
        source: WakeSource,
    },
    /// A claim returned jobs.
    Claimed {
        /// The queue.
        queue: String,
        /// How many.
        count: usize,
    },
    /// A handler started.
    Started {
        /// The job.
        id: i64,
        /// Its kind.
        kind: String,
        /// The attempt, from 1.
        attempt: i32,
    },
    /// A handler was asked to stop.
    CancelRequested {
        /// The job.
        id: i64,
        /// Why.
        reason: CancelReason,
    },
    /// An outcome was written: the job reached `state`.
    Finished {
        /// The job.
        id: i64,
        /// The state it reached.
        state: JobState,
        /// The attempt's error, as stored in the job's history (without
        /// credentials, at most [`ERROR_TEXT_MAX`](crate::ERROR_TEXT_MAX)
        /// bytes): the handler's error of a failed attempt, the reason of a
        /// discard or cancel. `None` for a completion, a snooze, a release.
        error: Option<String>,
    },
    /// An outcome was refused because the lease no longer held (the job was
    /// rescued and may run elsewhere).
    Stale {
        /// The job.
        id: i64,
    },
    /// Writing outcomes failed; they are kept and retried.
    FlushFailed {
        /// How many outcomes wait.
        pending: usize,
        /// The error.
        error: String,
    },
    /// A heartbeat was written.
    Heartbeat {
        /// Leases extended.
        extended: usize,
        /// Leases found lost.
        lost: usize,
    },
    /// The LISTEN connection is up.
    ListenerConnected,
    /// The LISTEN connection was lost; producers poll until it is back.
    ListenerLost {
        /// The error.
        error: String,
    },
    /// Jobs leased to this worker that it did not know it held (a claim
    /// whose answer was lost) were given back, unstarted, without using an
    /// attempt.
    Reconciled {
        /// The jobs given back.
        released: Vec<i64>,
    },
    /// This process took its worker id in the workers registry: it claims
    /// jobs and stands for election from now on.
    Registered,
    /// Another live process holds this worker's id: this one waits, claiming
    /// nothing, until that one is gone (worker ids must be unique).
    WorkerIdInUse {
        /// The holder's host.
        host: String,
        /// The holder's process id.
        pid: i32,
    },
    /// The worker finished shutting down.
    Stopped,
    /// This process won the leader election: it runs the maintenance
    /// services (rescuer, scheduler, periodic jobs, archive) from now on.
    LeaderElected,
    /// This process is no longer the leader: another took over, its lease
    /// could not be renewed in time, or it resigned at shutdown.
    LeaderLost,
    /// A periodic job's run was enqueued (once across the fleet).
    PeriodicEnqueued {
        /// The periodic job's name.
        name: String,
        /// The run's scheduled time.
        run_at: DateTime<Utc>,
        /// The job enqueued (or the holder of its unique key).
        id: i64,
    },
    /// The archive's dated partitions changed.
    ArchiveMaintained {
        /// Partitions created ahead of time.
        created: Vec<String>,
        /// Tables dropped by retention.
        dropped: Vec<String>,
    },
}

/// Where a worker's (or a `Maintenance`'s) parts send their events: a
/// broadcast channel that costs nothing while nobody listens. Cheap to
/// clone.
#[derive(Clone, Debug)]
pub(crate) struct Events {
    tx: tokio::sync::broadcast::Sender<Event>,
}

/// Events kept for a slow subscriber before it lags.
const EVENTS_BUFFERED: usize = 4096;

impl Events {
    pub fn new() -> Self {
        Events { tx: tokio::sync::broadcast::channel(EVENTS_BUFFERED).0 }
    }

    /// Sends `ev` if anyone listens.
    pub fn emit(&self, ev: Event) {
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(ev);
        }
    }

    /// Events from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
