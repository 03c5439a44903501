//! `skiplock queues`: list queues, pause and resume them; show the periodic
//! jobs and which worker leads the fleet's maintenance.

use std::ffi::OsString;

use anyhow::Result;
use serde::Serialize;

use super::Ctx;
use crate::input::utf8;
use crate::output::{self, Table};

/// The `queues` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every queue with jobs or settings: paused or not, and its live counts
    #[command(after_help = "Examples:\n  skiplock queues list\n  skiplock queues list --json")]
    List,
    /// Stop claims from a queue: jobs keep arriving, running ones finish, none start
    #[command(after_help = "Examples:\n  skiplock queues pause mail")]
    Pause {
        /// The queue
        queue: OsString,
    },
    /// Let workers claim from a paused queue again (they are woken at once)
    #[command(after_help = "Examples:\n  skiplock queues resume mail")]
    Resume {
        /// The queue
        queue: OsString,
    },
    /// Periodic jobs the workers registered: schedule, next run, last run
    #[command(after_help = "Examples:\n  skiplock queues periodic\n  skiplock queues periodic --json")]
    Periodic,
    /// The worker that runs maintenance (rescuer, scheduler, periodic jobs, retention) now
    #[command(after_help = "Examples:\n  skiplock queues leader")]
    Leader,
}

#[derive(Serialize)]
struct Paused<'a> {
    queue: &'a str,
    paused: bool,
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<()> {
    let client = ctx.client()?;
    let (queue, paused) = match cmd {
        Command::List => {
            let queues = client.queues().await?;
            if ctx.json() {
                return output::json(&queues);
            }
            if queues.is_empty() {
                println!("no queues yet");
                return Ok(());
            }
            let mut table = Table::new(&[
                ("QUEUE", false),
                ("PAUSED", false),
                ("AVAILABLE", true),
                ("RUNNING", true),
                ("WAITING", true),
            ]);
            for q in queues {
                let paused = if q.paused { "paused" } else { "-" };
                table.row(vec![
                    q.name,
                    paused.into(),
                    q.available.to_string(),
                    q.running.to_string(),
                    q.waiting.to_string(),
                ]);
            }
            table.print();
            return Ok(());
        }
        Command::Periodic => {
            let jobs = client.periodic_jobs().await?;
            if ctx.json() {
                return output::json(&jobs);
            }
            if jobs.is_empty() {
                println!("no periodic jobs registered yet");
                return Ok(());
            }
            let mut table =
                Table::new(&[("NAME", false), ("SCHEDULE", false), ("NEXT RUN", false), ("LAST RUN", false)]);
            for p in jobs {
                let last = p.last_run_at.map_or_else(|| "-".to_owned(), |t| t.to_rfc3339());
                table.row(vec![p.name, p.schedule, p.next_run_at.to_rfc3339(), last]);
            }
            table.print();
            return Ok(());
        }
        Command::Leader => {
            let leader = client.leader().await?;
            if ctx.json() {
                return output::json(&leader);
            }
            match leader {
                Some(l) => println!("{} leads since {}, lease until {}", l.id, l.elected_at, l.expires_at),
                None => println!("no leader: no worker with maintenance on is running"),
            }
            return Ok(());
        }
        Command::Pause { queue } => (utf8("queue", &queue)?, true),
        Command::Resume { queue } => (utf8("queue", &queue)?, false),
    };
    if paused {
        client.queue_pause(&queue).await?;
    } else {
        client.queue_resume(&queue).await?;
    }
    if ctx.json() {
        return output::json(&Paused { queue: &queue, paused });
    }
    if paused {
        println!("paused queue {queue:?}: no jobs start from it until `skiplock queues resume {queue}`");
    } else {
        println!("resumed queue {queue:?}");
    }
    Ok(())
}
