//! `skiplock bench`: measures skiplock on a real PostgreSQL, beside the bare
//! SQL of a SKIP LOCKED queue on the same server in the same run (the
//! ceiling), and prints a table per workload with medians and spreads.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the driver: sizes, the order of workloads, the report |
//! | `env.rs` | the private durable cluster (or the given database), the machine |
//! | `db.rs`, `db/*.sql` | the benchmark's own schema: reset, empty, settle, count |
//! | `worker.rs` | the real worker runtime with a no-op job, and its event tally |
//! | `ceiling.rs`, `ceiling/*.sql` | the bare-SQL queue: COPY, INSERT, claim + finish |
//! | `enqueue.rs` | W1: `enqueue_many` and one-by-one `enqueue` |
//! | `drain.rs` | W2: a backlog worked off at several concurrencies |
//! | `latency.rs`, `latency/*.sql` | W3: enqueue-to-start latency at a fixed rate |
//! | `depth.rs`, `depth/*.sql` | W4: claim latency and drain rate as the backlog grows |
//! | `churn.rs`, `churn/*.sql` | W5: the hot table's size while a million jobs pass |
//! | `dashboard.rs`, `dashboard/*.sql` | W6: dashboard pages beside a million archived jobs |
//! | `pinned.rs` | W7: the drain while a long transaction pins the xmin horizon |
//! | `fairness.rs` | W8: two workers' shares of one queue, and a late joiner |
//! | `stats.rs`, `report.rs` | medians, spreads, percentiles; tables and JSON |
//!
//! docs/BENCHMARKS.md describes the method and holds the numbers.

mod ceiling;
mod churn;
mod dashboard;
mod db;
mod depth;
mod drain;
mod enqueue;
mod env;
mod fairness;
mod latency;
mod pinned;
mod report;
mod stats;
mod worker;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use self::ceiling::Ceiling;
use self::db::Db;
use self::env::{Env, Machine, loadavg};
use self::report::{Document, Section};
use crate::cmd::Ctx;
use crate::cmd::bench::{Args, Workload};
use crate::cmd::demo::stop_on_signal;
use crate::fail::Interrupted;
use crate::output;

/// The sizes of a run: the for a full run, small ones for `--quick`.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Runs of each workload.
    pub runs: usize,
    /// W1: jobs in the one `enqueue_many` call.
    pub enqueue_bulk: u64,
    /// W1: one-by-one `enqueue` calls.
    pub enqueue_each: u64,
    /// W1: tasks (and connections) making them.
    pub enqueue_tasks: usize,
    /// W2: jobs drained per run.
    pub drain_jobs: u64,
    /// W2: the worker concurrencies.
    pub drain_concurrency: Vec<usize>,
    /// W3: arrival rates, jobs/s.
    pub latency_rates: Vec<u64>,
    /// W3: how long the producer runs at each rate.
    pub latency_secs: u64,
    /// W4: backlogs of available jobs.
    pub depths: Vec<u64>,
    /// W4: far-future jobs beside the smallest backlog.
    pub depth_scheduled: u64,
    /// W4: claims measured per run.
    pub depth_claims: usize,
    /// W4: jobs the worker drains per run.
    pub depth_drain: u64,
    /// W5: jobs processed.
    pub churn_jobs: u64,
    /// W5: jobs kept waiting.
    pub churn_backlog: u64,
    /// W6: archived jobs beside the dashboard.
    pub dashboard_archived: u64,
    /// W6: requests per page per run.
    pub dashboard_requests: usize,
    /// W7: jobs per round.
    pub pinned_jobs: u64,
    /// W7: rounds under the pin.
    pub pinned_rounds: usize,
    /// W8: jobs per part.
    pub fairness_jobs: u64,
}

/// Runs of each workload in a full run: the machines are noisy, so the
/// median of three with its spread.
const RUNS_DEFAULT: usize = 3;

impl Scale {
    /// The sizes.
    pub fn full(runs: usize) -> Scale {
        Scale {
            runs,
            enqueue_bulk: 100_000,
            enqueue_each: 10_000,
            enqueue_tasks: 16,
            drain_jobs: 100_000,
            drain_concurrency: vec![10, 100, 1_000],
            latency_rates: vec![1_000, 10_000],
            latency_secs: 20,
            depths: vec![10_000, 1_000_000, 5_000_000],
            depth_scheduled: 1_000_000,
            depth_claims: 200,
            depth_drain: 50_000,
            churn_jobs: 1_000_000,
            churn_backlog: 20_000,
            dashboard_archived: 1_000_000,
            dashboard_requests: 50,
            pinned_jobs: 100_000,
            pinned_rounds: 10,
            fairness_jobs: 20_000,
        }
    }

    /// Small sizes: every code path, in well under two minutes in a debug
    /// build.
    pub fn quick(runs: usize) -> Scale {
        Scale {
            runs,
            enqueue_bulk: 5_000,
            enqueue_each: 1_000,
            enqueue_tasks: 16,
            drain_jobs: 5_000,
            drain_concurrency: vec![10, 100, 1_000],
            latency_rates: vec![1_000, 10_000],
            latency_secs: 2,
            depths: vec![2_000, 20_000],
            depth_scheduled: 20_000,
            depth_claims: 20,
            depth_drain: 2_000,
            churn_jobs: 20_000,
            churn_backlog: 2_000,
            dashboard_archived: 20_000,
            dashboard_requests: 5,
            pinned_jobs: 2_000,
            pinned_rounds: 2,
            fairness_jobs: 2_000,
        }
    }
}

/// A progress line, on stderr so stdout holds only the report.
pub fn progress(line: &str) {
    eprintln!("  {line}");
}

/// Jobs per second.
pub fn rate(jobs: u64, took: Duration) -> f64 {
    jobs as f64 / took.as_secs_f64().max(1e-9)
}

/// Runs the benchmark, then stops the private cluster (also on ctrl-c).
pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let stop = tokio_util::sync::CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(stop.clone()));
    let url = ctx.database_url()?;
    if url.is_none() {
        progress("starting a private, durable PostgreSQL cluster (no --database-url given) ...");
    }
    let env = Env::start(url, &args.pg_settings).await?;
    let result = tokio::select! {
        r = suite(ctx, &args, &env) => r,
        () = stop.cancelled() => Err(Interrupted.into()),
    };
    signals.abort();
    env.stop().await;
    result
}

async fn suite(ctx: &Ctx, args: &Args, env: &Env) -> Result<()> {
    let started = Instant::now();
    let runs = args.runs.map_or(if args.quick { 1 } else { RUNS_DEFAULT }, |n| n as usize);
    let scale = if args.quick { Scale::quick(runs) } else { Scale::full(runs) };
    let db = Db::connect(&env.url).await?;
    let machine = Machine::read(&db, env).await?;
    progress(&format!(
        "{} ({} CPUs, {} GiB), PostgreSQL {}, {} build; load {:?}",
        machine.cpu,
        machine.cpus,
        machine.memory_gib,
        machine.postgres.get("server_version").cloned().flatten().unwrap_or_default(),
        machine.build,
        loadavg()
    ));
    let mut chosen = if args.workload.is_empty() {
        vec![
            Workload::W1,
            Workload::W2,
            Workload::W3,
            Workload::W4,
            Workload::W5,
            Workload::W6,
            Workload::W7,
            Workload::W8,
        ]
    } else {
        args.workload.clone()
    };
    chosen.sort();
    chosen.dedup();
    let mut doc = Document {
        skiplock_version: env!("CARGO_PKG_VERSION"),
        command: command_line(args),
        quick: args.quick,
        runs,
        started_at: chrono::Utc::now(),
        seconds: 0.0,
        machine,
        workloads: BTreeMap::new(),
    };
    for w in chosen {
        // Every workload starts from a freshly migrated schema.
        db.reset().await?;
        let (load_before, t) = (loadavg(), Instant::now());
        let mut section: Section = match w {
            Workload::W1 => enqueue::run(&db, &scale).await,
            Workload::W2 => drain::run(&db, &scale).await,
            Workload::W3 => latency::run(&db, &scale).await,
            Workload::W4 => depth::run(&db, &scale).await,
            Workload::W5 => churn::run(&db, &scale).await,
            Workload::W6 => dashboard::run(&db, &scale).await,
            Workload::W7 => pinned::run(&db, &scale).await,
            Workload::W8 => fairness::run(&db, &scale).await,
        }
        .with_context(|| format!("workload {w:?} failed"))?;
        section.load_before = load_before;
        section.load_after = loadavg();
        section.seconds = t.elapsed().as_secs_f64();
        if !ctx.json() {
            print!("{}", section.render());
        }
        doc.workloads.insert(section.id, section);
    }
    db.drop_schema().await?;
    Ceiling::drop_schema(&db).await?;
    doc.seconds = started.elapsed().as_secs_f64();
    if let Some(path) = &args.json_file {
        let text = serde_json::to_string_pretty(&doc)?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        progress(&format!("wrote {}", path.display()));
    }
    if ctx.json() {
        output::json(&doc)?;
    } else {
        println!("\nwhole run: {}", output::seconds(doc.seconds));
    }
    Ok(())
}

/// The options that shaped the numbers, as a command line (never the
/// database URL, which may hold a password).
fn command_line(args: &Args) -> String {
    let mut cmd = String::from("skiplock bench");
    if args.quick {
        cmd.push_str(" --quick");
    }
    for w in &args.workload {
        cmd.push_str(&format!(" --workload {}", format!("{w:?}").to_lowercase()));
    }
    if let Some(n) = args.runs {
        cmd.push_str(&format!(" --runs {n}"));
    }
    for s in &args.pg_settings {
        cmd.push_str(&format!(" --pg-setting {s}"));
    }
    cmd
}
