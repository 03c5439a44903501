//! `skiplock`, the command line of the skiplock job queue: migrate a schema,
//! enqueue jobs, look at them and act on them, run a self-contained demo and
//! benchmark the queue.
//!
//! This file only parses arguments and turns errors into one line on stderr;
//! the subcommands live in `cmd/`, one file each.

mod bench;
mod cli;
mod cmd;
mod fail;
mod input;
mod output;
mod prometheus;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // `work --exec` runs each command under this: synchronous, no logging.
    if let cli::Command::ExecGuard(args) = &cli.command {
        return cmd::exec_guard::run(args);
    }
    // Warnings and errors, unless RUST_LOG says otherwise. The demo fails some
    // jobs once on purpose and counts them itself: its per-attempt lines
    // (target `skiplock::jobs`) would only drown its progress.
    let default = if matches!(cli.command, cli::Command::Demo(_)) { "warn,skiplock::jobs=error" } else { "warn" };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail::report(&e),
    }
}
