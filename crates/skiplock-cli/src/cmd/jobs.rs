//! `skiplock jobs`: list, show, retry and cancel jobs.

use std::ffi::OsString;

use anyhow::{Result, bail};
use chrono::Utc;
use serde::Serialize;
use skiplock::{CancelResult, Client, JobFilter, JobRow, JobState};

use super::Ctx;
use crate::input::utf8_opt;
use crate::output::{self, Table};

const LIST_EXAMPLES: &str = "\
Examples:
  skiplock jobs list                              # the newest 50 jobs, any state
  skiplock jobs list --state retryable --queue mail
  skiplock jobs list --kind email --limit 200 --before 81234   # the next page
  skiplock jobs list --state discarded --json | jq '.[].errors'";

/// The `jobs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List jobs, newest first (unfinished and archived alike)
    #[command(after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Show everything about one job: args, attempts, error history
    #[command(after_help = "Examples:\n  skiplock jobs show 42\n  skiplock jobs show 42 --json | jq .args")]
    Show {
        /// The job's id
        id: i64,
    },
    /// Make jobs run again now: finished ones come back from the archive
    /// (with at least one attempt left), scheduled and retryable ones run at once
    #[command(after_help = "Examples:\n  skiplock jobs retry 42\n  skiplock jobs retry 42 43 44")]
    Retry {
        /// The jobs' ids
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
    },
    /// Cancel jobs: waiting ones at once; running ones are told to stop and end
    /// as cancelled when their handler returns (or their lease runs out)
    #[command(after_help = "Examples:\n  skiplock jobs cancel 42\n  skiplock jobs cancel 42 43 44 --json")]
    Cancel {
        /// The jobs' ids
        #[arg(required = true, value_name = "ID")]
        ids: Vec<i64>,
    },
}

/// Filters for `jobs list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only jobs in this state: available, scheduled, running, retryable, completed,
    /// cancelled or discarded
    #[arg(long, value_name = "STATE")]
    state: Option<OsString>,
    /// Only jobs of this queue
    #[arg(long, value_name = "QUEUE")]
    queue: Option<OsString>,
    /// Only jobs of this kind
    #[arg(long, value_name = "KIND")]
    kind: Option<OsString>,
    /// At most this many, 1 to 1000
    #[arg(long, value_name = "N", default_value_t = 50, allow_negative_numbers = true)]
    limit: i64,
    /// Only jobs with ids below this one (to page: pass the last id shown)
    #[arg(long, value_name = "ID")]
    before: Option<i64>,
}

pub async fn run(ctx: &Ctx, cmd: Command) -> Result<()> {
    let client = ctx.client()?;
    match cmd {
        Command::List(args) => list(ctx, &client, args).await,
        Command::Show { id } => show(ctx, &client, id).await,
        Command::Retry { ids } => retry(ctx, &client, &ids).await,
        Command::Cancel { ids } => cancel(ctx, &client, &ids).await,
    }
}

async fn list(ctx: &Ctx, client: &Client, args: ListArgs) -> Result<()> {
    let mut filter = JobFilter::new().limit(args.limit);
    if let Some(state) = utf8_opt("--state", args.state.as_ref())? {
        filter = filter.state(state.parse::<JobState>()?);
    }
    if let Some(queue) = utf8_opt("--queue", args.queue.as_ref())? {
        filter = filter.queue(queue);
    }
    if let Some(kind) = utf8_opt("--kind", args.kind.as_ref())? {
        filter = filter.kind(kind);
    }
    if let Some(id) = args.before {
        filter = filter.before_id(id);
    }
    let jobs = client.jobs_list(&filter).await?;
    if ctx.json() {
        return output::json(&jobs);
    }
    if jobs.is_empty() {
        println!("no jobs match");
        return Ok(());
    }
    let now = Utc::now();
    let mut table = Table::new(&[
        ("ID", true),
        ("STATE", false),
        ("QUEUE", false),
        ("KIND", false),
        ("PRI", true),
        ("ATTEMPT", true),
        ("RUN AT", false),
        ("ARGS", false),
    ]);
    for j in &jobs {
        table.row(vec![
            j.id.to_string(),
            j.state.to_string(),
            j.queue.clone(),
            j.kind.clone(),
            j.priority.to_string(),
            format!("{}/{}", j.attempt, j.max_attempts),
            output::relative(j.run_at, now),
            output::clip(&j.args.to_string(), 48),
        ]);
    }
    table.print();
    if jobs.len() as i64 == args.limit {
        let last = jobs.last().map_or(0, |j| j.id);
        println!("(more may match: add --before {last} for the next page)");
    }
    Ok(())
}

async fn show(ctx: &Ctx, client: &Client, id: i64) -> Result<()> {
    let Some(job) = client.job(id).await? else {
        bail!("job {id} not found");
    };
    if ctx.json() {
        return output::json(&job);
    }
    print!("{}", describe(&job));
    Ok(())
}

/// Every field of a job, one per line, then its args and error history.
fn describe(j: &JobRow) -> String {
    let now = Utc::now();
    let when = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or_else(|| "-".to_owned(), |t| format!("{} ({})", output::time(t), output::relative(t, now)))
    };
    let mut fields: Vec<(&str, String)> = vec![
        ("id", j.id.to_string()),
        ("kind", j.kind.clone()),
        ("queue", j.queue.clone()),
        ("state", j.state.to_string()),
        ("priority", j.priority.to_string()),
        ("attempt", format!("{} of {}", j.attempt, j.max_attempts)),
        ("run at", when(Some(j.run_at))),
        ("created at", when(Some(j.created_at))),
        ("attempted at", when(j.attempted_at)),
        ("finished at", when(j.finished_at)),
    ];
    if j.state == JobState::Running || j.lease_expires_at.is_some() {
        fields.push(("lease expires", when(j.lease_expires_at)));
    }
    fields.push(("worker", j.leased_by.clone().unwrap_or_else(|| "-".into())));
    if j.cancel_requested_at.is_some() {
        fields.push(("cancel asked", when(j.cancel_requested_at)));
    }
    fields.push(("unique key", j.unique_key.clone().unwrap_or_else(|| "-".into())));
    fields.push(("tags", if j.tags.is_empty() { "-".into() } else { j.tags.join(", ") }));
    fields.push(("meta", j.meta.to_string()));
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(&format!("{k:<width$}  {v}\n"));
    }
    let pretty = serde_json::to_string_pretty(&j.args).unwrap_or_else(|_| j.args.to_string());
    out.push_str("args\n");
    for line in pretty.lines() {
        out.push_str(&format!("  {line}\n"));
    }
    if j.errors.is_empty() {
        out.push_str("errors: none\n");
    } else {
        out.push_str(&format!("errors ({}, oldest first)\n", j.errors.len()));
        for e in &j.errors {
            let mut lines = e.error.lines();
            out.push_str(&format!(
                "  attempt {} at {}: {}\n",
                e.attempt,
                output::time(e.at),
                lines.next().unwrap_or("")
            ));
            for more in lines {
                out.push_str(&format!("    {more}\n"));
            }
        }
    }
    out
}

/// What happened to one id, for `retry` and `cancel`.
#[derive(Serialize)]
struct PerId {
    id: i64,
    /// A stable word for scripts: `retried`, `cancelling`, `not_found`…
    result: &'static str,
    /// Whether the id got what was asked (the command fails otherwise).
    #[serde(skip)]
    ok: bool,
    /// What the word means, for people.
    #[serde(skip)]
    note: &'static str,
}

impl PerId {
    fn new(id: i64, result: &'static str, ok: bool, note: &'static str) -> PerId {
        PerId { id, result, ok, note }
    }
}

async fn retry(ctx: &Ctx, client: &Client, ids: &[i64]) -> Result<()> {
    let retried = client.retry(ids).await?;
    let mut results = Vec::with_capacity(ids.len());
    for &id in ids {
        let r = if retried.contains(&id) {
            PerId::new(id, "retried", true, "")
        } else {
            // Say why not: the library returns only the ids it retried.
            match client.job(id).await? {
                None => PerId::new(id, "not_found", false, ""),
                Some(j) if j.state == JobState::Running => {
                    PerId::new(id, "running", false, " (not retried: wait for it to end, or cancel it)")
                }
                Some(j) if j.state == JobState::Available => PerId::new(id, "already_available", true, ""),
                Some(_) => PerId::new(id, "not_retried", false, ""),
            }
        };
        results.push(r);
    }
    report(ctx, &results, "retried")
}

async fn cancel(ctx: &Ctx, client: &Client, ids: &[i64]) -> Result<()> {
    let results: Vec<PerId> = client
        .cancel(ids)
        .await?
        .into_iter()
        .map(|(id, r)| match r {
            CancelResult::Cancelled => PerId::new(id, "cancelled", true, ""),
            CancelResult::Cancelling => PerId::new(id, "cancelling", true, " (running: its worker is told to stop)"),
            CancelResult::NotFound => PerId::new(id, "not_found", false, " (finished already, or unknown)"),
        })
        .collect();
    report(ctx, &results, "cancelled")
}

/// Prints one line per id, and fails (after printing) if any id did not get
/// what was asked.
fn report(ctx: &Ctx, results: &[PerId], verb: &str) -> Result<()> {
    if ctx.json() {
        output::json(&results)?;
    } else {
        for r in results {
            println!("job {}: {}{}", r.id, r.result.replace('_', " "), r.note);
        }
    }
    let failed = results.iter().filter(|r| !r.ok).count();
    if failed > 0 {
        bail!("{failed} of {} jobs could not be {verb}", results.len());
    }
    Ok(())
}
