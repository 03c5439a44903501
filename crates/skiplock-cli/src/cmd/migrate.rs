//! `skiplock migrate`: create or upgrade the schema, or move it to a version.

use anyhow::{Result, bail};
use serde::Serialize;

use super::Ctx;
use crate::output;

const EXAMPLES: &str = "\
Examples:
  skiplock migrate                    # apply every pending migration (safe to run again)
  skiplock migrate --schema jobs_v2   # a second queue in its own schema
  skiplock migrate --to 0 --yes       # remove skiplock from the schema: DROPS EVERY JOB";

/// Applies pending migrations in one transaction under an advisory lock, so
/// running it again, or from several processes at once, is safe.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    /// Move to this version instead of the newest: up by applying, down by
    /// reverting migrations (0 removes skiplock from the schema)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    to: Option<i32>,
    /// Confirm a move down, which drops tables and the jobs in them
    #[arg(long)]
    yes: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'a str,
    direction: &'static str,
    applied: Vec<i32>,
    version: i32,
}

pub async fn run(ctx: &Ctx, args: Args) -> Result<()> {
    let client = ctx.client()?;
    let latest = skiplock::MIGRATIONS.last().map_or(0, |m| m.version);
    let current = client.schema_version().await?;
    let target = args.to.unwrap_or(latest);
    if !(0..=latest).contains(&target) {
        bail!("invalid --to: {target} is not a version between 0 and {latest}");
    }
    let down = target < current;
    if down && !args.yes {
        bail!(
            "moving schema {:?} down from version {current} to {target} drops tables and the jobs in them; \
             pass --yes to do it",
            client.schema().name()
        );
    }
    let report = client.migrate_to(target).await?;
    let names = |versions: &[i32]| -> String {
        let name = |v: i32| skiplock::MIGRATIONS.iter().find(|m| m.version == v).map_or("?", |m| m.name);
        versions.iter().map(|v| format!("{v:04}_{}", name(*v))).collect::<Vec<_>>().join(", ")
    };
    let schema = client.schema().name();
    if ctx.json() {
        let direction = if down { "down" } else { "up" };
        return output::json(&Report { schema, direction, applied: report.applied, version: report.version });
    }
    if report.applied.is_empty() {
        println!("schema {schema:?} is at version {}; nothing to do", report.version);
    } else if down {
        println!("reverted {} in schema {schema:?}; now at version {}", names(&report.applied), report.version);
    } else {
        println!("applied {} in schema {schema:?}; now at version {}", names(&report.applied), report.version);
    }
    Ok(())
}
