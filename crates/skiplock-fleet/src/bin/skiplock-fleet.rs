//! `skiplock-fleet soak`: a fleet of worker processes drains jobs while every
//! kind of fault is injected at once; prints what was injected and what the
//! audit found, and exits non-zero if a guarantee broke. See
//! `docs/GUARANTEES.md` and `skiplock_fleet::soak`.
//!
//! ```sh
//! cargo build --release -p skiplock-fleet
//! target/release/skiplock-fleet soak --jobs 1000000 --minutes 10
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser as _;
use skiplock_fleet::soak::{self, SoakConfig};

#[derive(Debug, clap::Parser)]
#[command(name = "skiplock-fleet")]
enum Cmd {
    /// Drain jobs under faults (SIGKILL, pg_terminate_backend, dropped and
    /// stalled connections, server restarts), then audit every job
    Soak {
        /// Jobs to enqueue, evenly over the fault phase
        #[arg(long, default_value_t = 1_000_000)]
        jobs: u64,
        /// Minutes of faults
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// Worker processes
        #[arg(long, default_value_t = 3)]
        workers: usize,
        /// Jobs running at once per worker
        #[arg(long, default_value_t = 50)]
        concurrency: usize,
        /// The worker binary (default: skiplock-fleet-worker beside this one)
        #[arg(long, value_name = "PATH")]
        worker_bin: Option<PathBuf>,
        /// Attempts each job is given (1: every fault that interrupts a job
        /// discards it, and the audit checks that none is discarded unrun)
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i32).range(1..=10_000))]
        max_attempts: i32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    let Cmd::Soak { jobs, minutes, workers, concurrency, worker_bin, max_attempts } = Cmd::parse();
    let worker_exe = match worker_bin {
        Some(p) => p,
        None => match std::env::current_exe() {
            Ok(me) => me.with_file_name("skiplock-fleet-worker"),
            Err(e) => {
                eprintln!("error: cannot find this program's path: {e}");
                return ExitCode::from(2);
            }
        },
    };
    if !worker_exe.exists() {
        eprintln!(
            "error: no worker binary at {}: build it (cargo build --release -p skiplock-fleet) or pass --worker-bin",
            worker_exe.display()
        );
        return ExitCode::from(2);
    }
    let cfg = SoakConfig {
        jobs,
        duration: Duration::from_secs_f64(minutes * 60.0),
        workers: workers.max(1),
        concurrency: concurrency.max(1),
        worker_exe,
        drain_limit: Duration::from_secs(600),
        max_attempts,
    };
    println!(
        "soak: {jobs} jobs of {max_attempts} attempts, {} workers x {} slots, {minutes} minutes of faults",
        cfg.workers, cfg.concurrency
    );
    let started = Instant::now();
    match soak::run(&cfg).await {
        Ok(report) => {
            println!("{report}");
            println!("total {:.0}s", started.elapsed().as_secs_f64());
            let problems = report.audit.problems(true);
            if problems.is_empty() {
                println!("ok");
                ExitCode::SUCCESS
            } else {
                for p in problems {
                    println!("FAILED: {p}");
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
