//! The soak: a fleet of worker processes drains jobs enqueued all along while
//! every kind of fault is injected at once, for minutes; then the faults stop,
//! the queue drains, and the [`Audit`] says whether a job was lost, finished
//! twice, or run in two places at once.
//!
//! Two private clusters: the queue's, which is restarted (`pg_ctl restart -m
//! immediate`), and the execution log's, which nothing touches (it is how
//! executions are counted). Workers reach the queue through a [`Proxy`] that
//! drops and stalls connections; a driver kills workers with SIGKILL and
//! starts replacements; another terminates their connections from the server
//! side.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skiplock::Client;
use skiplock_testdb::{Cluster, ClusterOptions};
use tokio_util::sync::CancellationToken;

use crate::audit::{Audit, BoxError, enqueue_with, setup};
use crate::faults::{NetworkFaults, Terminations, connect, crash_loop, proxy_loop, terminate_loop, watch_drain};
use crate::fleet::Fleet;
use crate::proxy::Proxy;

/// The queue the soak's workers serve.
pub const QUEUE: &str = "soak";

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Jobs to enqueue, spread over the fault phase.
    pub jobs: u64,
    /// How long faults are injected.
    pub duration: Duration,
    /// Worker processes at any time.
    pub workers: usize,
    /// Slots per worker.
    pub concurrency: usize,
    /// The `skiplock-fleet-worker` binary.
    pub worker_exe: PathBuf,
    /// Longest wait for the drain once the faults stop.
    pub drain_limit: Duration,
    /// Attempts each job is given: 1 shows that no job is discarded
    /// without having run (a fault then discards the jobs it interrupts).
    pub max_attempts: i32,
}

/// What a soak did and found.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// Workers killed with SIGKILL (and replaced).
    pub kills: u64,
    /// `pg_terminate_backend` rounds, and the connections they terminated.
    pub terminations: Terminations,
    /// What the proxy did.
    pub network: NetworkFaults,
    /// Immediate restarts of the queue's server.
    pub restarts: u64,
    /// How long the fault phase lasted.
    pub fault_phase: Duration,
    /// How long the drain took after the faults stopped.
    pub drain: Duration,
    /// The audit.
    pub audit: Audit,
}

impl SoakReport {
    /// Every fault injected.
    pub fn faults(&self) -> u64 {
        self.kills + self.terminations.rounds + self.network.drops + self.network.stalls + self.restarts
    }
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.audit;
        writeln!(
            f,
            "faults for {:.0}s, then drained in {:.1}s",
            self.fault_phase.as_secs_f64(),
            self.drain.as_secs_f64()
        )?;
        writeln!(
            f,
            "jobs: {} enqueued, {} completed, {} discarded, {} cancelled",
            a.enqueued, a.completed, a.discarded, a.cancelled
        )?;
        writeln!(
            f,
            "faults injected: {} (SIGKILL {}, pg_terminate_backend rounds {} ({} connections), proxy drops {} ({} \
             connections), proxy stalls {}, server restarts {})",
            self.faults(),
            self.kills,
            self.terminations.rounds,
            self.terminations.connections,
            self.network.drops,
            self.network.connections_dropped,
            self.network.stalls,
            self.restarts
        )?;
        writeln!(f, "executions: {} (max attempt {})", a.executions, a.max_attempt)?;
        write!(
            f,
            "lost {}, duplicated finals {}, unfinished {}, overlapping executions {}, completed without an execution {}, \
             discarded without having run {} (and {} whose worker was SIGKILLed before its handler logged)",
            a.lost,
            a.duplicated_finals,
            a.unfinished,
            a.overlaps.len(),
            a.unexecuted,
            a.discarded_unrun,
            a.discarded_unrun_killed
        )
    }
}

/// Runs a soak; the report says what it found (see [`Audit::problems`]).
///
/// # Errors
///
/// When the clusters, the workers or the bookkeeping fail (not when a
/// guarantee is broken: that is in the report).
pub async fn run(cfg: &SoakConfig) -> Result<SoakReport, BoxError> {
    // synchronous_commit on: an immediate restart must not lose commits the
    // workers were told about (fsync stays off: a process crash keeps the
    // page cache, so it costs nothing here).
    let opts = ClusterOptions { settings: vec![("synchronous_commit".into(), "on".into())], ..Default::default() };
    let queue_cluster = Arc::new(tokio::task::spawn_blocking(move || Cluster::start(opts)).await??);
    let log_cluster = tokio::task::spawn_blocking(|| Cluster::start(ClusterOptions::default())).await??;
    let (queue_url, log_url) = (queue_cluster.url("postgres"), log_cluster.url("postgres"));
    let client = Client::connect(&queue_url)?;
    client.migrate().await?;
    let log_db = connect(&log_url).await?;
    setup(&connect(&queue_url).await?, &log_db).await?;
    let proxy = Proxy::in_front_of(&queue_url).await?;

    let concurrency = cfg.concurrency.to_string();
    let args: Vec<String> = [
        "--queue",
        QUEUE,
        "--handler",
        "log",
        "--log-url",
        &log_url,
        "--concurrency",
        &concurrency,
        "--lease-ms",
        "5000",
        "--rescue-ms",
        "1000",
        "--leader-lease-ms",
        "3000",
        "--poll-ms",
        "500",
        "--statement-timeout-ms",
        "5000",
    ]
    .map(str::to_owned)
    .into();
    let mut fleet = Fleet::new(&cfg.worker_exe, proxy.url(&queue_url));
    for _ in 0..cfg.workers {
        fleet.start(&args).await?;
    }

    let stop = CancellationToken::new();
    let started = Instant::now();
    let enqueued = Arc::new(AtomicU64::new(0));
    let enqueuer =
        tokio::spawn(enqueue_loop(client.clone(), queue_url.clone(), cfg.clone(), enqueued.clone(), stop.clone()));
    let terminator = {
        let (url, stop) = (queue_url.clone(), stop.clone());
        tokio::spawn(async move { terminate_loop(&url, Duration::from_secs(2)..Duration::from_secs(6), &stop).await })
    };
    let restarter = {
        let (cluster, stop) = (queue_cluster.clone(), stop.clone());
        tokio::spawn(async move {
            let mut restarts = 0u64;
            loop {
                let pause = Duration::from_secs(rand::random_range(40..80));
                tokio::select! {
                    _ = stop.cancelled() => return Ok::<_, BoxError>(restarts),
                    _ = tokio::time::sleep(pause) => {}
                }
                let c = cluster.clone();
                tokio::task::spawn_blocking(move || c.restart_immediate()).await??;
                restarts += 1;
            }
        })
    };
    let (network, kills) = {
        let net = proxy_loop(
            &proxy,
            Duration::from_secs(3)..Duration::from_secs(8),
            Duration::from_millis(500)..Duration::from_secs(3),
            &stop,
        );
        let crash = crash_loop(&mut fleet, &log_db, &args, Duration::from_secs(3)..Duration::from_secs(8), &stop);
        let timer = async {
            tokio::time::sleep(cfg.duration).await;
            // Done when every job is enqueued, however long that took.
            while enqueued.load(Ordering::Relaxed) < cfg.jobs && !enqueuer.is_finished() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            stop.cancel();
        };
        let (network, kills, ()) = tokio::join!(net, crash, timer);
        (network, kills?)
    };
    let fault_phase = started.elapsed();
    enqueuer.await??;
    let terminations = terminator.await?;
    let restarts = restarter.await??;
    proxy.set_stalled(false);

    let drain = watch_drain(&queue_url, cfg.drain_limit, &CancellationToken::new()).await;
    fleet.stop_all().await?;
    let audit = Audit::run(&connect(&queue_url).await?, Some(&log_db)).await?;
    let report = SoakReport {
        kills,
        terminations,
        network,
        restarts,
        fault_phase,
        drain: drain.as_ref().copied().unwrap_or(cfg.drain_limit),
        audit,
    };
    drop(proxy);
    Ok(report)
}

/// Enqueues `cfg.jobs` jobs evenly over `cfg.duration`, a batch a second,
/// retrying a batch that failed (its transaction left nothing, or
/// everything: `fleet_enqueued` says which).
async fn enqueue_loop(
    client: Client,
    url: String,
    cfg: SoakConfig,
    enqueued: Arc<AtomicU64>,
    stop: CancellationToken,
) -> Result<(), BoxError> {
    let seconds = cfg.duration.as_secs().max(1);
    let batch = cfg.jobs.div_ceil(seconds).max(1);
    let started = Instant::now();
    let mut pg: Option<tokio_postgres::Client> = None;
    let mut second = 0u64;
    while enqueued.load(Ordering::Relaxed) < cfg.jobs {
        // Catch up when behind; never run ahead of the schedule.
        let due = started + Duration::from_secs(second);
        tokio::time::sleep_until(due.into()).await;
        let n = batch.min(cfg.jobs - enqueued.load(Ordering::Relaxed)) as usize;
        let c = match pg.as_mut() {
            Some(c) => c,
            None => match connect(&url).await {
                Ok(c) => pg.insert(c),
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let opts = skiplock::EnqueueOptions::new().queue(QUEUE).max_attempts(cfg.max_attempts);
        match enqueue_with(&client, c, "soak", n, opts).await {
            Ok(_) => {
                enqueued.fetch_add(n as u64, Ordering::Relaxed);
                second += 1;
            }
            Err(_) => pg = None,
        }
        if stop.is_cancelled() && started.elapsed() > cfg.duration * 2 {
            return Err(Box::new(io::Error::other("could not enqueue every job in twice the soak's duration")));
        }
    }
    Ok(())
}
