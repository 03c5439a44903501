//! This worker's entry in the workers registry (`{schema}.workers`): at most
//! one live process per worker id.
//!
//! The worker id is what a worker leaves in `leased_by` and what it is
//! elected leader under, and the runtime relies on it naming one process:
//! after a lost claim it gives back the jobs leased to its id that it does
//! not hold (`producer::reconcile`), and two processes leading under one id
//! would run their maintenance passes at once. So a worker takes its id in
//! the registry before it claims or stands for election, and a second
//! process started with an id in use waits, saying so, until the first is
//! gone: deregistered at its shutdown, or expired with its leases (the
//! heartbeat moves the entry's expiry with theirs, in one statement).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::config::Config;
use crate::db::Db;
use crate::db::worker::{self, WorkerRegisterParams};
use crate::error::Result;
use crate::events::{Event, Events};
use crate::service::Service;

/// This process's part of the registry.
pub(crate) struct Registry {
    /// Random per process start: which process holds the id.
    pub instance: i64,
    /// True while this process holds its worker id.
    registered: watch::Sender<bool>,
}

impl Registry {
    pub fn new() -> Self {
        Registry { instance: rand::random::<i64>() & i64::MAX, registered: watch::Sender::new(false) }
    }

    /// Tells whether this process holds its id, and each change.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.registered.subscribe()
    }

    pub fn is_registered(&self) -> bool {
        *self.registered.borrow()
    }

    /// Waits until this process holds its id; false if `stop` fired first.
    pub async fn wait(&self, stop: &CancellationToken) -> bool {
        let mut rx = self.registered.subscribe();
        tokio::select! {
            r = rx.wait_for(|on| *on) => r.is_ok(),
            _ = stop.cancelled() => false,
        }
    }

    /// The heartbeat found the entry gone (it expired, and another process
    /// took the id): stop claiming until it is taken again.
    pub fn lost(&self) {
        if self.registered.send_replace(false) {
            tracing::error!(
                "this worker's registry entry expired and was taken: it stops claiming until it gets it back"
            );
        }
    }
}

/// Takes the worker id, and takes it again whenever it is lost: a
/// [`Service`] whose pass tries to take the id if this process does not hold
/// it (and does nothing if it does), every sixth of a lease (50ms to 5s).
pub(crate) struct Register {
    db: Db,
    cfg: Arc<Config>,
    events: Events,
    registry: Arc<Registry>,
    host: String,
    queues: String,
    /// Whether this process has said, since it last held the id, that
    /// another holds it.
    told: AtomicBool,
}

impl Register {
    pub fn new(db: Db, cfg: Arc<Config>, events: Events, registry: Arc<Registry>) -> Self {
        let queues = serde_json::Value::Object(
            cfg.queues.iter().map(|(q, c)| (q.clone(), serde_json::Value::from(c.concurrency))).collect(),
        )
        .to_string();
        Register { db, cfg, events, registry, host: crate::host::hostname(), queues, told: AtomicBool::new(false) }
    }
}

impl Service for Register {
    const NAME: &'static str = "registry";
    /// Whether this process holds its worker id after the pass.
    type Report = bool;

    async fn run_once(&self) -> Result<Option<bool>> {
        if self.registry.is_registered() {
            return Ok(Some(true));
        }
        let cfg = &self.cfg;
        let p = WorkerRegisterParams {
            id: &cfg.worker_id,
            instance: self.registry.instance,
            host: &self.host,
            pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
            queues: &self.queues,
            lease_ms: cfg.lease_ms,
        };
        let conn = self.db.conn().await?;
        if worker::register(conn.on(), &p).await? {
            self.told.store(false, Ordering::Relaxed);
            self.registry.registered.send_replace(true);
            self.events.emit(Event::Registered);
            return Ok(Some(true));
        }
        if !self.told.swap(true, Ordering::Relaxed) {
            let holder = worker::holder(conn.on(), &cfg.worker_id).await.ok().flatten();
            let (host, pid) = holder.as_ref().map_or((String::new(), 0), |h| (h.host.clone(), h.pid));
            tracing::error!(worker_id = %cfg.worker_id, holder_host = %host, holder_pid = pid,
                "worker id in use by another live process: waiting for it to stop (worker ids must be unique)");
            self.events.emit(Event::WorkerIdInUse { host, pid });
        }
        Ok(Some(false))
    }

    fn next_pass(&self, _: &Result<Option<bool>>) -> Duration {
        retry_every(self.cfg.lease)
    }
}

/// How often a waiting process tries to take its id.
fn retry_every(lease: Duration) -> Duration {
    (lease / 6).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

impl Register {
    /// Gives the id up at shutdown (a restart with the same id then starts
    /// at once); if this fails, the entry expires with the leases.
    pub async fn deregister(&self) {
        if !self.registry.is_registered() {
            return;
        }
        let gone = tokio::time::timeout(Duration::from_secs(5), async {
            let conn = self.db.conn().await?;
            worker::deregister(conn.on(), &self.cfg.worker_id, self.registry.instance).await
        })
        .await;
        match gone {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not deregister; the entry expires with the lease"),
            Err(_) => tracing::warn!("deregistering timed out; the entry expires with the lease"),
        }
        self.registry.registered.send_replace(false);
    }
}
