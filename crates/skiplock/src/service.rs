//! One shape for every background service, and one driver for all of them.
//!
//! A service is a struct holding its own documented config (defaults and
//! ranges checked by its `new`) and the database handle it needs; it knows
//! how to run **one pass** ([`Service::run_once`], which tests call directly)
//! and how long to wait before the next one. [`spawn`] owns everything else,
//! the same for every service: the loop, the stop token, leadership (a
//! leader-only service waits while its process does not lead, and runs at
//! once when it is elected), restarting the service a second after a panic,
//! and logging a failed pass. Adding a service is one file (the struct and
//! its `impl Service`) and one line where its owner spawns it.
//!
//! Leader-only services check leadership twice: the driver looks at this
//! process's own view (so followers stay idle without a query), and each
//! pass's transaction opens with the database's (`maintenance::guarded!`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Result;

/// A background service; see the module doc.
pub(crate) trait Service: Send + Sync + 'static {
    /// Its name, in logs and the panic metric.
    const NAME: &'static str;
    /// What one pass did.
    type Report: Send;

    /// One pass. `Ok(None)` when there was nothing it could do (a
    /// leader-only service whose process does not lead).
    fn run_once(&self) -> impl Future<Output = Result<Option<Self::Report>>> + Send;

    /// How long to wait after a pass that ended so.
    fn next_pass(&self, last: &Result<Option<Self::Report>>) -> Duration;

    /// Runs when the service stops (at shutdown), after its last pass.
    fn stopped(&self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// When a service runs.
#[derive(Clone)]
pub(crate) enum Gate {
    /// Always.
    Always,
    /// While this process leads (the receiver tells leadership changes).
    Leader(watch::Receiver<bool>),
}

/// Runs `service` until `stop`, in the shape the module doc describes.
pub(crate) fn spawn<S: Service>(service: Arc<S>, gate: Gate, stop: CancellationToken) -> JoinHandle<()> {
    let token = stop.clone();
    supervise(S::NAME, token, move || drive(service.clone(), gate.clone(), stop.clone()))
}

async fn drive<S: Service>(service: Arc<S>, gate: Gate, stop: CancellationToken) {
    let mut leading = match &gate {
        Gate::Always => None,
        Gate::Leader(rx) => Some(rx.clone()),
    };
    loop {
        if let Some(rx) = leading.as_mut()
            && !*rx.borrow_and_update()
        {
            tokio::select! {
                _ = stop.cancelled() => break,
                changed = rx.changed() => if changed.is_err() { break },
            }
            continue;
        }
        let last = service.run_once().await;
        if let Err(e) = &last {
            tracing::warn!(service = S::NAME, error = %e, "pass failed");
        }
        let wait = service.next_pass(&last);
        let woken = async {
            match leading.as_mut() {
                Some(rx) => {
                    let _ = rx.changed().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            _ = woken => {}
        }
    }
    service.stopped().await;
}

/// Runs `task` until it returns, restarting it a second after each panic
/// (unless `stop` was cancelled meanwhile): a bug in one pass must not leave
/// a worker without its heartbeat, its listener, its claims or its
/// maintenance.
pub(crate) fn supervise<F, Fut>(name: &'static str, stop: CancellationToken, task: F) -> JoinHandle<()>
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match tokio::spawn(task()).await {
                Ok(()) => return,
                Err(e) if e.is_panic() => {
                    tracing::error!(service = name, "service panicked; restarting it in a second");
                    metrics::counter!(crate::metrics::SERVICE_PANICS, "service" => name).increment(1);
                    if !sleep_or(&stop, Duration::from_secs(1)).await {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    })
}

/// Sleeps for `d` unless `stop` fires first; true if it slept in full.
pub(crate) async fn sleep_or(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}
