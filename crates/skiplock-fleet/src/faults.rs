//! Fault drivers: loops that break one thing at a time, at random moments,
//! until told to stop, and count what they did. Each runs beside a drain;
//! [`watch_drain`] stops them once the hot table is empty.

use std::io;
use std::ops::Range;
use std::time::{Duration, Instant};

use rand::Rng as _;
use tokio_util::sync::CancellationToken;

use crate::audit::record_kill;
use crate::fleet::Fleet;
use crate::proxy::Proxy;

/// A connection to `url` with the URL's TLS settings
/// ([`skiplock::connect_raw`]), its driver running in the background.
///
/// # Errors
///
/// When it cannot connect.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, skiplock::Error> {
    skiplock::connect_raw(url).await
}

/// A random pause in `range`.
fn pause(range: &Range<Duration>) -> Duration {
    rand::rng().random_range(range.clone())
}

/// Waits `d` unless `stop` fires first; true if it waited in full.
async fn wait(stop: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Polls the hot table of the database at `url` until it is empty, then
/// cancels `stop`; reconnects after errors (the server may be restarting).
/// Returns how long that took.
///
/// # Errors
///
/// When it is not empty within `limit` (`stop` is cancelled all the same).
pub async fn watch_drain(url: &str, limit: Duration, stop: &CancellationToken) -> io::Result<Duration> {
    let started = Instant::now();
    let _stop_anyway = stop.clone().drop_guard();
    let mut db = None;
    let mut last = None;
    while started.elapsed() < limit {
        if db.is_none() {
            db = connect(url).await.ok();
        }
        if let Some(c) = &db {
            match c.query_one("SELECT count(*) FROM skiplock.jobs", &[]).await {
                Ok(row) if row.get::<_, i64>(0) == 0 => return Ok(started.elapsed()),
                Ok(row) => last = Some(row.get::<_, i64>(0)),
                Err(_) => db = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(io::Error::new(io::ErrorKind::TimedOut, format!("not drained within {limit:?}: {last:?} jobs left")))
}

/// Kills a random live worker every `every` (a random pause in that range)
/// with SIGKILL, records its reaping in `fleet_kills`, and starts a
/// replacement with `args`, until `stop`. Returns the kills.
///
/// # Errors
///
/// When a worker cannot be killed or started, or the kill not recorded.
pub async fn crash_loop<S: AsRef<std::ffi::OsStr>>(
    fleet: &mut Fleet,
    log_db: &tokio_postgres::Client,
    args: &[S],
    every: Range<Duration>,
    stop: &CancellationToken,
) -> io::Result<u64> {
    let mut kills = 0;
    while wait(stop, pause(&every)).await {
        let live = fleet.live();
        let victim = live[rand::rng().random_range(0..live.len())];
        let pid = fleet.kill(victim).await?;
        record_kill(log_db, pid).await.map_err(io::Error::other)?;
        kills += 1;
        fleet.start(args).await?;
    }
    Ok(kills)
}

/// What [`terminate_loop`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Terminations {
    /// Rounds of `pg_terminate_backend`.
    pub rounds: u64,
    /// Connections terminated in all.
    pub connections: u64,
}

/// Terminates every connection the workers' pools and LISTEN hold
/// (`application_name = 'skiplock'`) in the database at `url`, every
/// `every`, until `stop`; reconnects after errors (the server may be
/// restarting).
pub async fn terminate_loop(url: &str, every: Range<Duration>, stop: &CancellationToken) -> Terminations {
    let mut t = Terminations::default();
    let mut db = None;
    while wait(stop, pause(&every)).await {
        if db.is_none() {
            db = connect(url).await.ok();
        }
        let Some(c) = &db else { continue };
        let sql = "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
                   WHERE datname = current_database() AND application_name = 'skiplock'
                     AND pid <> pg_backend_pid()";
        match c.query_one(sql, &[]).await {
            Ok(row) => {
                t.rounds += 1;
                t.connections += row.get::<_, i64>(0) as u64;
            }
            Err(_) => db = None,
        }
    }
    t
}

/// What [`proxy_loop`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkFaults {
    /// Times every open connection was dropped.
    pub drops: u64,
    /// Connections dropped in all.
    pub connections_dropped: u64,
    /// Times every connection was stalled.
    pub stalls: u64,
}

/// Every `every`, in turn drops every connection through `proxy`, or stalls
/// them all for `stall` (then drops them in half the cases, as a partition
/// that ends in resets would), until `stop`.
pub async fn proxy_loop(
    proxy: &Proxy,
    every: Range<Duration>,
    stall: Range<Duration>,
    stop: &CancellationToken,
) -> NetworkFaults {
    let mut f = NetworkFaults::default();
    let mut round = 0u64;
    while wait(stop, pause(&every)).await {
        round += 1;
        if round % 2 == 1 {
            f.drops += 1;
            f.connections_dropped += proxy.drop_all() as u64;
            continue;
        }
        f.stalls += 1;
        proxy.set_stalled(true);
        let whole = wait(stop, pause(&stall)).await;
        if whole && rand::rng().random_bool(0.5) {
            f.drops += 1;
            f.connections_dropped += proxy.drop_all() as u64;
        }
        proxy.set_stalled(false);
    }
    f
}
