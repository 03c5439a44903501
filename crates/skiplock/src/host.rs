//! Who this process is, for the names it leaves in the database: its host
//! name, and the worker id it takes when none is given.

/// `host-pid-random`: unique per process start, readable in `leased_by`.
pub(crate) fn default_worker_id() -> String {
    format!("{}-{}-{:04x}", hostname(), std::process::id(), rand::random::<u16>())
}

/// This machine's host name (`host` if it cannot be read).
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}
