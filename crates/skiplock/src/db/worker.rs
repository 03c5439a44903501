//! Workers-registry statements: take a worker id for one process, find who
//! holds it, give it up. (The heartbeat keeps it alive: `job/heartbeat.sql`.)

use super::On;
use super::json::JsonText;
use crate::error::Result;

/// A registration to take.
pub(crate) struct WorkerRegisterParams<'a> {
    pub id: &'a str,
    pub instance: i64,
    pub host: &'a str,
    pub pid: i32,
    /// `{"queue": concurrency}`.
    pub queues: &'a str,
    pub lease_ms: i64,
}

/// Takes the id for this instance; false when a live process holds it.
pub(crate) async fn register(on: On<'_>, p: &WorkerRegisterParams<'_>) -> Result<bool> {
    let rows =
        on.run(&on.s.worker_register, &[&p.id, &p.instance, &p.host, &p.pid, &JsonText(p.queues), &p.lease_ms]).await?;
    Ok(!rows.is_empty())
}

/// The live process holding a worker id.
#[derive(Debug, Clone)]
pub(crate) struct Holder {
    pub host: String,
    pub pid: i32,
}

/// Who holds `id`, if a live process does.
pub(crate) async fn holder(on: On<'_>, id: &str) -> Result<Option<Holder>> {
    let rows = on.run(&on.s.worker_holder, &[&id]).await?;
    rows.first().map(|r| Ok(Holder { host: r.try_get(0)?, pid: r.try_get(1)? })).transpose()
}

/// Gives up `id` if `instance` holds it; true if it did.
pub(crate) async fn deregister(on: On<'_>, id: &str, instance: i64) -> Result<bool> {
    Ok(!on.run(&on.s.worker_deregister, &[&id, &instance]).await?.is_empty())
}
