//! Maintenance services run inside worker processes: the rescuer (expired
//! leases back to the queue) and the scheduler (due jobs made available).
//! Both are safe to run in several processes at once (they claim their rows
//! with SKIP LOCKED).

mod rescuer;
mod scheduler;

use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::runtime::Shared;

/// Starts every maintenance service.
pub(crate) fn spawn(sh: Arc<Shared>) -> Vec<JoinHandle<()>> {
    vec![tokio::spawn(rescuer::run(sh.clone())), tokio::spawn(scheduler::run(sh))]
}
