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
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{Event, Shared, sleep_or};
use crate::db::worker::WorkerRegisterParams;

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

/// Takes the worker id, and takes it again whenever it is lost.
pub(crate) async fn run(sh: Arc<Shared>) {
    let cfg = &sh.cfg;
    let host = crate::worker::hostname();
    let queues = serde_json::Value::Object(
        cfg.queues.iter().map(|(q, c)| (q.clone(), serde_json::Value::from(c.concurrency))).collect(),
    )
    .to_string();
    let lease_ms = i64::try_from(cfg.lease.as_millis()).unwrap_or(i64::MAX);
    let p = WorkerRegisterParams {
        id: &cfg.worker_id,
        instance: sh.registry.instance,
        host: &host,
        pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
        queues: &queues,
        lease_ms,
    };
    let mut changes = sh.registry.registered.subscribe();
    let mut told = false;
    loop {
        if !sh.registry.is_registered() {
            match sh.client.worker_register(&p).await {
                Ok(true) => {
                    told = false;
                    sh.registry.registered.send_replace(true);
                    sh.emit(Event::Registered);
                    continue;
                }
                Ok(false) => {
                    let holder = sh.client.worker_holder(&cfg.worker_id).await.ok().flatten();
                    if !told {
                        let (host, pid) = holder.as_ref().map_or((String::new(), 0), |h| (h.host.clone(), h.pid));
                        tracing::error!(worker_id = %cfg.worker_id, holder_host = %host, holder_pid = pid,
                            "worker id in use by another live process: waiting for it to stop (worker ids must be unique)");
                        sh.emit(Event::WorkerIdInUse { host, pid });
                        told = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot register this worker yet; retrying"),
            }
            if !sleep_or(&sh.services_stop, retry_every(cfg.lease)).await {
                return;
            }
            continue;
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = sh.services_stop.cancelled() => return,
        }
    }
}

/// How often a waiting process tries to take its id.
fn retry_every(lease: Duration) -> Duration {
    (lease / 6).clamp(Duration::from_millis(50), Duration::from_secs(5))
}

/// Gives the id up at shutdown (a restart with the same id then starts at
/// once); if this fails, the entry expires with the leases.
pub(crate) async fn deregister(sh: &Shared) {
    if !sh.registry.is_registered() {
        return;
    }
    let gone = tokio::time::timeout(
        Duration::from_secs(5),
        sh.client.worker_deregister(&sh.cfg.worker_id, sh.registry.instance),
    )
    .await;
    match gone {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not deregister; the entry expires with the lease"),
        Err(_) => tracing::warn!("deregistering timed out; the entry expires with the lease"),
    }
    sh.registry.registered.send_replace(false);
}
