//! `skiplock bench`: the arguments. The benchmark itself lives in
//! `crate::bench` (driver, workloads, ceiling, report).

use std::path::PathBuf;

use anyhow::Result;

use super::Ctx;

const EXAMPLES: &str = "\
Without --database-url it starts a private, durable PostgreSQL cluster (fsync on) in a temporary
directory and removes it at exit. With one, it works in the schemas skiplock_bench and
skiplock_bench_ceiling of that database, which it DROPS and recreates (--schema is not used).
Tables go to stdout, progress to stderr; --json prints the JSON document instead of the tables.

Examples:
  skiplock bench --quick                      # smoke test: small sizes, one run (CI)
  cargo build --release -p skiplock-cli
  target/release/skiplock bench --json-file bench.json   # the full suite, as in docs/BENCHMARKS.md
  target/release/skiplock bench --workload w2 --runs 5   # one workload
  skiplock bench --workload w2 --pg-setting synchronous_commit=off   # what commits cost";

/// Measures skiplock against the bare SQL of a SKIP LOCKED queue (the
/// ceiling) on the same database in the same run: W1 enqueue, W2 drain,
/// W3 latency, W4 depth, W5 churn, W6 dashboard. Each workload runs several times and
/// prints the median and spread.
///
/// Without --database-url it starts a private, durable PostgreSQL cluster
/// (fsync on) in a temporary directory and removes it at exit. With one, it
/// works in the schemas `skiplock_bench` and `skiplock_bench_ceiling` of that
/// database, which it DROPS and recreates (--schema is not used).
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Small sizes and one run: a smoke test that takes well under two
    /// minutes even in a debug build. Its numbers mean little.
    #[arg(long)]
    pub quick: bool,

    /// Run only these workloads (repeat or separate with commas)
    #[arg(long, value_enum, value_delimiter = ',', ignore_case = true, value_name = "W")]
    pub workload: Vec<Workload>,

    /// Runs of each workload [default: 3, or 1 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: Option<u32>,

    /// Also write every figure, with its samples, as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json_file: Option<PathBuf>,

    /// An extra postgresql.conf setting for the private cluster (repeatable)
    #[arg(long = "pg-setting", value_name = "NAME=VALUE")]
    pub pg_settings: Vec<String>,
}

/// The workloads, by the names the issue and docs/BENCHMARKS.md use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Workload {
    /// Enqueue: `enqueue_many` and one-by-one `enqueue`, against COPY and INSERT
    W1,
    /// Drain: queued no-op jobs worked by the worker runtime, against claim+finish in SQL
    W2,
    /// Latency: enqueue-to-start at a fixed arrival rate
    W3,
    /// Depth: claim latency and drain rate as the queue grows to millions
    W4,
    /// Churn: hot table size before and after a million jobs
    W5,
    /// Dashboard: page render times beside a million archived jobs
    W6,
    /// Pinned: the drain while a long transaction pins the xmin horizon
    W7,
    /// Fairness: two workers' shares of one queue of 10 ms jobs, and a late joiner
    W8,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    crate::bench::run(ctx, args).await
}
