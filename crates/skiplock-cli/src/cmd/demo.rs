//! `skiplock demo`: everything at once with no setup. Starts a private
//! PostgreSQL unless a database is given, migrates it, enqueues a few
//! thousand jobs (some scheduled, some failing once) and works them off,
//! printing progress and a summary.

mod worker;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::Serialize;
use skiplock::{EnqueueOptions, Job as _, NewJob};
use skiplock_testdb::{Cluster, ClusterOptions};
use tokio_util::sync::CancellationToken;

use super::Ctx;
use super::stats::Stats;
use crate::fail::Interrupted;
use crate::output;

/// Jobs the demo enqueues unless told otherwise.
const JOBS_DEFAULT: u32 = 5_000;
/// Jobs per `enqueue_many` call.
const ENQUEUE_BATCH: usize = 5_000;
/// The demo's queues.
const QUEUES: [&str; 2] = [worker::SendEmail::QUEUE, worker::Thumbnail::QUEUE];
/// Every this many jobs, one is scheduled a second or two ahead.
const SCHEDULED_EVERY: u32 = 50;
/// Every this many jobs, one fails its first attempt and is retried.
const FAIL_ONCE_EVERY: u32 = 40;
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// Connections: the worker's producers, completer, heartbeat and
/// maintenance, and this function.
const POOL_SIZE: usize = 10;

/// Runs a self-contained demo. With no --database-url and no DATABASE_URL, it
/// starts a private PostgreSQL cluster in a temporary directory and removes it
/// at exit (also on ctrl-c); with one, it uses that database (queues demo-mail
/// and demo-media of the --schema).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  skiplock demo\n  skiplock demo --jobs 50000\n  skiplock demo --json\n  \
                         skiplock demo --dashboard            # then open the address it prints")]
pub struct Args {
    /// Jobs to enqueue and work off
    #[arg(long, value_name = "N", default_value_t = JOBS_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    jobs: u32,
    /// Serve the web dashboard too, and keep the cluster and the worker running (with a trickle of
    /// new jobs) until ctrl-c
    #[arg(long)]
    dashboard: bool,
    /// Where the dashboard listens (loopback only; a free port if the default is taken)
    #[arg(long, value_name = "ADDR", default_value = super::dashboard::LISTEN_DEFAULT, requires = "dashboard")]
    listen: std::net::SocketAddr,
}

/// New jobs per second while the dashboard demo keeps running.
const TRICKLE_PER_SEC: u32 = 20;

#[derive(Serialize)]
struct Summary {
    jobs: u64,
    finished: u64,
    seconds: f64,
    jobs_per_sec: f64,
    scheduled: u64,
    retried: u64,
    stats: Stats,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let stop = CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(stop.clone()));
    let say = |line: &str| if ctx.json() { eprintln!("{line}") } else { println!("{line}") };
    let (url, cluster) = match ctx.database_url()? {
        Some(url) => (url, None),
        None => {
            say("starting a private PostgreSQL cluster (no --database-url given) ...");
            let started = tokio::task::spawn_blocking(|| Cluster::start(ClusterOptions::default()))
                .await
                .context("cannot start a private PostgreSQL cluster")?
                .context("cannot start a private PostgreSQL cluster")?;
            say(&format!(
                "cluster up at {}, files in {} (removed at exit)",
                started.url("postgres"),
                started.socket_dir().display()
            ));
            (started.url("postgres"), Some(started))
        }
    };
    let result = demo(ctx, &url, &args, &stop, say).await;
    signals.abort();
    if let Some(cluster) = cluster {
        // Stopping runs pg_ctl: blocking work, off the async threads.
        let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
        say("stopped and removed the private cluster");
    }
    result
}

/// Starts the dashboard on loopback for the demo; its address.
async fn dashboard(
    client: &skiplock::Client,
    prometheus: metrics_exporter_prometheus::PrometheusHandle,
    args: &Args,
    stop: &CancellationToken,
    say: impl Fn(&str),
) -> Result<String> {
    anyhow::ensure!(args.listen.ip().is_loopback(), "the demo's dashboard listens on a loopback address only");
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(_) if args.listen.to_string() == super::dashboard::LISTEN_DEFAULT => {
            tokio::net::TcpListener::bind((args.listen.ip(), 0)).await.context("cannot listen on loopback")?
        }
        Err(e) => return Err(e).with_context(|| format!("cannot listen on {}", args.listen)),
    };
    let addr = format!("http://{}/", listener.local_addr()?);
    let d = super::dashboard::build(client.clone(), &super::dashboard::Args::local(args.listen))?.metrics(prometheus);
    let stop = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = super::dashboard::serve(listener, d, stop).await {
            tracing::error!(error = %e, "the demo's dashboard stopped");
        }
    });
    say(&format!("dashboard at {addr}"));
    Ok(addr)
}

/// Enqueues a few jobs a second (a tenth fail once, some tagged) until
/// `stop`, so the dashboard has something to show.
async fn trickle(client: &skiplock::Client, stop: &CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u32;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let jobs: Result<Vec<NewJob>, _> = (0..TRICKLE_PER_SEC)
            .map(|_| {
                n = n.wrapping_add(1);
                let args = worker::DemoArgs { n, fail_once: n % 10 == 3 };
                let opts = if n % 25 == 0 { EnqueueOptions::new().tag("vip") } else { EnqueueOptions::new() };
                if n % 2 == 0 {
                    NewJob::typed(&worker::SendEmail(args), opts)
                } else {
                    NewJob::typed(&worker::Thumbnail(args), opts)
                }
            })
            .collect();
        match jobs {
            Ok(jobs) => {
                if let Err(e) = client.enqueue_many(jobs).await {
                    tracing::warn!(error = %e, "demo trickle not enqueued");
                }
            }
            Err(e) => tracing::warn!(error = %e, "demo trickle not built"),
        }
    }
}

/// Cancels `stop` on ctrl-c or SIGTERM.
pub(crate) async fn stop_on_signal(stop: CancellationToken) {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    stop.cancel();
}

/// Runs `fut` unless `stop` fires first.
async fn or_stop<T>(stop: &CancellationToken, fut: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        r = fut => r,
        () = stop.cancelled() => Err(Interrupted.into()),
    }
}

async fn demo(ctx: &Ctx, url: &str, args: &Args, stop: &CancellationToken, say: impl Fn(&str)) -> Result<()> {
    let client = ctx.client_with(url, POOL_SIZE)?;
    let migrated = or_stop(stop, async { Ok(client.migrate().await?) }).await?;
    say(&format!("schema {:?} at version {}", client.schema().name(), migrated.version));
    // The archive's tables for today and the days ahead, made before any job
    // finishes (as a running fleet's leader keeps them): on a fresh database
    // the leader would otherwise make today's while the first outcomes are
    // written, and those few writes are refused once and retried, with a
    // warning each.
    or_stop(stop, async {
        let setup = skiplock::Maintenance::builder(client.clone()).id("demo-setup").build()?;
        if setup.elect().await? {
            setup.archive_once(None).await?;
            setup.resign().await?;
        }
        Ok(())
    })
    .await?;

    // Enqueue: two kinds on two queues, a few scheduled, a few that fail once.
    let started = Instant::now();
    let total = u64::from(args.jobs);
    let (mut scheduled, mut fail_once) = (0u64, 0u64);
    let all: Vec<u32> = (0..args.jobs).collect();
    for chunk in all.chunks(ENQUEUE_BATCH) {
        let mut jobs = Vec::with_capacity(chunk.len());
        for &n in chunk {
            let mut opts = EnqueueOptions::new();
            if n % SCHEDULED_EVERY == 7 {
                opts = opts.delay(Duration::from_millis(1_000 + u64::from(n % 3) * 500));
                scheduled += 1;
            }
            let fails = n % FAIL_ONCE_EVERY == 3;
            fail_once += u64::from(fails);
            let args = worker::DemoArgs { n, fail_once: fails };
            jobs.push(if n % 2 == 0 {
                NewJob::typed(&worker::SendEmail(args), opts)?
            } else {
                NewJob::typed(&worker::Thumbnail(args), opts)?
            });
        }
        or_stop(stop, async { Ok(client.enqueue_many(jobs).await?) }).await?;
    }
    say(&format!(
        "enqueued {total} jobs in {} ({scheduled} scheduled a second or two ahead, {fail_once} set to fail once)",
        output::seconds(started.elapsed().as_secs_f64())
    ));

    // Work them off, printing progress, until all are finished or we are stopped.
    let tally = Arc::new(worker::Tally::new(total));
    let queues: Vec<String> = QUEUES.iter().map(|q| (*q).to_owned()).collect();
    let started = Instant::now();
    // The recorder first: the worker's metrics bind to the recorder installed
    // when it starts, and the dashboard's /metrics then shows them too.
    let prometheus = if args.dashboard { Some(crate::prometheus::install()?) } else { None };
    let work = worker::start(client.clone(), tally.clone(), args.dashboard)?;
    // The dashboard's own pool, so that its page views never wait behind the worker.
    let server = match prometheus {
        Some(p) => Some(dashboard(&ctx.client_with(url, 8)?, p, args, stop, &say).await?),
        None => None,
    };
    say(&format!("working with skiplock::Worker, {} jobs at once per queue ...", worker::CONCURRENCY));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let mut last = 0u64;
    let outcome = loop {
        tokio::select! {
            () = tally.all_done() => break Ok(()),
            () = stop.cancelled() => break Err(Interrupted),
            _ = tick.tick() => {
                let done = tally.finished.load(Ordering::Relaxed);
                say(&format!(
                    "  {done:>7} / {total} done  {:>6} jobs/s  {} retried",
                    (done - last) as f64 / PROGRESS_EVERY.as_secs_f64(),
                    tally.retried.load(Ordering::Relaxed),
                ));
                last = done;
            }
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    if let (Some(server), Ok(())) = (&server, &outcome) {
        say(&format!(
            "all {total} jobs done; the dashboard stays up at {server} with {TRICKLE_PER_SEC} new jobs a second: ctrl-c to stop"
        ));
        trickle(&client, stop).await;
    }
    if outcome.is_err() || server.is_some() {
        work.stop_now();
    }
    work.shutdown().await;
    if server.is_some() {
        return Ok(());
    }
    outcome?;

    let finished = tally.finished.load(Ordering::Relaxed);
    let retried = tally.retried.load(Ordering::Relaxed);
    let rows: Vec<_> = client.stats().await?.into_iter().filter(|r| queues.contains(&r.queue)).collect();
    let stats = Stats::from_rows(&rows);
    let jobs_per_sec = finished as f64 / elapsed.max(1e-3);
    if ctx.json() {
        return output::json(&Summary {
            jobs: total,
            finished,
            seconds: elapsed,
            jobs_per_sec,
            scheduled,
            retried,
            stats,
        });
    }
    println!(
        "done: {finished} jobs in {} ({jobs_per_sec:.0} jobs/s); {retried} failed once and were retried, \
         {scheduled} waited for their scheduled time",
        output::seconds(elapsed)
    );
    println!("final states:");
    stats.table().print();
    Ok(())
}
