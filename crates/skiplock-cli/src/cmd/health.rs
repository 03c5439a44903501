//! `skiplock health`: the figures an operator checks, and what needs action,
//! in words. Exit status 0 when all is well, 3 when a finding needs action,
//! 1 when it could not check (2 is bad usage, as for every command).

use anyhow::{Result, bail};
use skiplock::health::Level;
use skiplock::{Health, HealthLimits};

use super::Ctx;
use crate::fail::NeedsAction;
use crate::{input, output};

const EXAMPLES: &str = "\
Examples:
  skiplock health
  skiplock health --json | jq .findings
  skiplock health --xmin-age 1m || page-the-on-call   # exit 3: something needs action

Exit status: 0 all is well, 3 a finding needs action (each is printed with what to do),
1 it could not check (the database is unreachable, say), 2 bad usage.

Sessions of other roles are seen only with pg_read_all_stats (or pg_monitor).";

/// Reads the queue's health: the hot table's dead tuples and last vacuum,
/// what holds the oldest xmin back, the NOTIFY queue, the leader, jobs
/// stuck past their lease, the archive's dated tables, queues with jobs
/// waiting and no worker.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Warn when a snapshot, replication slot or prepared transaction is older than this
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    xmin_age: String,
    /// Warn when the hot table holds more dead tuples than this (and than live ones)
    #[arg(long, value_name = "N", default_value_t = skiplock::health::HEALTH_DEAD_TUPLES_DEFAULT)]
    dead_tuples: i64,
    /// Warn when the NOTIFY queue is fuller than this fraction
    #[arg(long, value_name = "FRACTION", default_value_t = skiplock::health::HEALTH_NOTIFY_USAGE_DEFAULT)]
    notify_usage: f64,
    /// Count running jobs this long past their lease as stuck
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    stuck_grace: String,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    if !(0.0..=1.0).contains(&args.notify_usage) {
        bail!("--notify-usage: must be between 0 and 1, not {}", args.notify_usage);
    }
    if args.dead_tuples < 0 {
        bail!("--dead-tuples: must not be negative");
    }
    let limits = HealthLimits::new()
        .xmin_age(input::duration("--xmin-age", &args.xmin_age)?)
        .stuck_grace(input::duration("--stuck-grace", &args.stuck_grace)?)
        .dead_tuples(args.dead_tuples)
        .notify_usage(args.notify_usage);
    let client = ctx.client()?;
    let health = client.health_with(&limits).await?;
    if ctx.json() {
        output::json(&health)?;
    } else {
        print!("{}", text(&health, &client.place()));
    }
    let n = health.findings.iter().filter(|f| f.level == Level::Warn).count();
    if n > 0 {
        return Err(NeedsAction(n).into());
    }
    Ok(())
}

/// The report as `skiplock health` prints it.
pub fn text(h: &Health, place: &str) -> String {
    let now = h.checked_at;
    let mut out = format!("health of {place} at {}\n", output::time(now));
    let ago =
        |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or_else(|| "never".to_owned(), |t| output::relative(t, now));
    let t = &h.hot_table;
    let mut rows = vec![
        (
            "hot table",
            format!(
                "{} live, {} dead tuples; vacuumed {}, analyzed {}",
                t.live_tuples,
                t.dead_tuples,
                ago(t.last_vacuum),
                ago(t.last_analyze)
            ),
        ),
        (
            "oldest xmin",
            match &h.oldest_xmin {
                None => "nothing holds it back".to_owned(),
                Some(x) => format!(
                    "{} {}{}, xid age {}",
                    x.kind,
                    x.who,
                    x.age_secs.map(|s| format!(" for {}", output::seconds(s))).unwrap_or_default(),
                    x.xid_age
                ),
            },
        ),
        ("notify queue", format!("{:.1}% full", h.notify_queue_usage * 100.0)),
        (
            "leader",
            match &h.leader {
                None => "none".to_owned(),
                Some(l) => format!("{}, lease ends {}", l.id, output::relative(l.expires_at, now)),
            },
        ),
        (
            "stuck running",
            match h.stuck_running.count {
                0 => "none".to_owned(),
                n => format!(
                    "{n}, the oldest {} past its lease",
                    h.stuck_running.oldest_secs.map_or_else(|| "?".to_owned(), output::seconds)
                ),
            },
        ),
    ];
    let p = &h.archive_partitions;
    rows.push((
        "archive",
        format!(
            "{} days ahead{}, oldest {}, {} rows in the default partition",
            p.days_ahead,
            if p.has_today { " from today" } else { " (none for today)" },
            p.oldest_day.map_or_else(|| "-".to_owned(), |d| d.to_string()),
            if p.default_rows >= 1000 { "1000+".to_owned() } else { p.default_rows.to_string() }
        ),
    ));
    rows.push(("last hour", format!("{} discarded, {} rescued", h.discarded_last_hour, h.rescued_last_hour)));
    rows.push((
        "unserved",
        if h.unserved_queues.is_empty() {
            "every queue with jobs waiting has a worker".to_owned()
        } else {
            let cap = skiplock::health::HEALTH_UNSERVED_COUNT_CAP;
            let count = |n: i64| if n >= cap { format!("{cap}+") } else { n.to_string() };
            h.unserved_queues
                .iter()
                .map(|u| format!("{} ({} waiting)", u.queue, count(u.waiting)))
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    for (name, value) in rows {
        out.push_str(&format!("  {name:<14} {value}\n"));
    }
    if h.findings.is_empty() {
        out.push_str("all is well\n");
    }
    for f in &h.findings {
        let level = match f.level {
            Level::Warn => "WARN",
            Level::Note => "NOTE",
        };
        out.push_str(&format!("\n{level} {}: {}\n  what to do: {}\n", f.check, f.message, f.advice));
    }
    out
}
