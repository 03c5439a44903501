//! The command tree: global options and one subcommand per file in `cmd/`.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

use crate::cmd::{bench, dashboard, demo, enqueue, exec_guard, health, jobs, migrate, queues, stats, work};

const EXAMPLES: &str = "\
Examples:
  skiplock demo                       # no setup needed: private PostgreSQL, 5,000 jobs
  export DATABASE_URL=postgres://app@localhost/app
  skiplock migrate                    # create or upgrade the schema
  skiplock enqueue --kind email --args '{\"to\":\"ada@example.com\"}'
  cat jobs.jsonl | skiplock enqueue   # one job object per line
  skiplock jobs list --state retryable
  skiplock jobs show 42
  skiplock stats
  skiplock health                     # exit 3 when something needs action
  skiplock queues pause mail
  skiplock dashboard                  # the web dashboard on http://127.0.0.1:8080/
  skiplock work --queue mail --exec ./send.sh  # runs the script per job, args on stdin";

/// skiplock: a PostgreSQL job queue built on FOR UPDATE SKIP LOCKED.
///
/// Jobs are rows in your PostgreSQL database. This command creates the schema,
/// enqueues jobs, shows and acts on them, works them with any program, and runs
/// a self-contained demo.
/// Every command that prints data can print JSON instead (--json).
#[derive(Debug, Parser)]
#[command(name = "skiplock", version, after_help = EXAMPLES, max_term_width = 100)]
pub struct Cli {
    /// Options every subcommand takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The database: postgres://user:password@host:port/dbname
    #[arg(
        long,
        env = crate::cmd::DATABASE_URL_ENV,
        global = true,
        hide_env_values = true,
        value_name = "URL",
        help_heading = "Global options"
    )]
    pub database_url: Option<OsString>,

    /// The PostgreSQL schema skiplock lives in
    #[arg(long, env = "SKIPLOCK_SCHEMA", global = true, hide_env_values = true, default_value = skiplock::SCHEMA_DEFAULT,
          value_name = "NAME", help_heading = "Global options")]
    pub schema: OsString,

    /// Print JSON instead of text (one document on stdout)
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or upgrade the skiplock schema (or move it to a given version)
    Migrate(migrate::Args),
    /// Enqueue one job from flags, or many from JSON lines on stdin
    Enqueue(enqueue::Args),
    /// List, show, retry and cancel jobs
    #[command(subcommand)]
    Jobs(jobs::Command),
    /// Job counts per queue and state, and the age of the oldest available job
    Stats(stats::Args),
    /// List queues, pause and resume them
    #[command(subcommand)]
    Queues(queues::Command),
    /// What needs an operator's action: vacuum, xmin holders, NOTIFY, leader, stuck jobs, archive
    Health(health::Args),
    /// Serve the web dashboard: overview, jobs, queues, periodic jobs, workers
    Dashboard(dashboard::Args),
    /// Run a self-contained demo: a private PostgreSQL, thousands of jobs, a worker
    Demo(demo::Args),
    /// Measure throughput and latency beside the bare-SQL ceiling (docs/BENCHMARKS.md)
    Bench(bench::Args),
    /// Work jobs with a shell command per job (args on stdin): a worker for any language
    Work(work::Args),
    /// Internal: what `work --exec` runs each command under (hidden)
    #[command(name = exec_guard::NAME, hide = true)]
    ExecGuard(exec_guard::Args),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }

    #[test]
    fn the_exec_guard_is_hidden() {
        use clap::CommandFactory as _;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("work") && !help.contains(exec_guard::NAME), "{help}");
    }
}
