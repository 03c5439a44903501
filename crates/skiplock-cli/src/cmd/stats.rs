//! `skiplock stats`: job counts per queue and state.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use skiplock::{JobState, QueueStats};

use super::Ctx;
use crate::output::{self, Table};

/// Shows how many jobs each queue has in each state, and how long the oldest
/// available job of each queue has been waiting.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  skiplock stats\n  watch -n1 skiplock stats\n  skiplock stats --json | jq .total")]
pub struct Args {}

/// One queue's counts (or the total's).
#[derive(Debug, Default, Serialize)]
pub struct Row {
    /// The queue (`total` for the sum).
    pub queue: String,
    /// Jobs per state, every state present.
    #[serde(flatten)]
    pub counts: BTreeMap<JobState, i64>,
    /// How long the oldest available job has been due, in seconds.
    pub oldest_available_secs: Option<f64>,
}

/// Counts per queue, and their total.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// One row per queue, by name.
    pub queues: Vec<Row>,
    /// The sum over queues.
    pub total: Row,
}

impl Stats {
    /// Groups the library's (queue, state, count) rows by queue.
    pub fn from_rows(rows: &[QueueStats]) -> Stats {
        let empty = || JobState::ALL.into_iter().map(|s| (s, 0)).collect::<BTreeMap<_, _>>();
        let mut queues: BTreeMap<&str, Row> = BTreeMap::new();
        let mut total = Row { queue: "total".into(), counts: empty(), oldest_available_secs: None };
        for r in rows {
            let row = queues.entry(&r.queue).or_insert_with(|| Row {
                queue: r.queue.clone(),
                counts: empty(),
                oldest_available_secs: None,
            });
            *row.counts.entry(r.state).or_default() += r.count;
            *total.counts.entry(r.state).or_default() += r.count;
            if let Some(age) = r.oldest_available_secs {
                row.oldest_available_secs = Some(row.oldest_available_secs.map_or(age, |a: f64| a.max(age)));
                total.oldest_available_secs = Some(total.oldest_available_secs.map_or(age, |a: f64| a.max(age)));
            }
        }
        Stats { queues: queues.into_values().collect(), total }
    }

    /// The table `skiplock stats` prints.
    pub fn table(&self) -> Table {
        let mut columns: Vec<(&'static str, bool)> = vec![("QUEUE", false)];
        columns.extend(JobState::ALL.iter().map(|s| (upper(*s), true)));
        columns.push(("OLDEST AVAILABLE", true));
        let mut table = Table::new(&columns);
        let rows = self.queues.iter().chain((self.queues.len() > 1).then_some(&self.total));
        for r in rows {
            let mut cells = vec![r.queue.clone()];
            cells.extend(JobState::ALL.iter().map(|s| r.counts.get(s).copied().unwrap_or(0).to_string()));
            cells.push(r.oldest_available_secs.map_or_else(|| "-".to_owned(), output::seconds));
            table.row(cells);
        }
        table
    }
}

fn upper(s: JobState) -> &'static str {
    match s {
        JobState::Available => "AVAILABLE",
        JobState::Scheduled => "SCHEDULED",
        JobState::Running => "RUNNING",
        JobState::Retryable => "RETRYABLE",
        JobState::Completed => "COMPLETED",
        JobState::Cancelled => "CANCELLED",
        JobState::Discarded => "DISCARDED",
    }
}

pub async fn run(ctx: &Ctx, _args: Args) -> Result<()> {
    let client = ctx.client()?;
    let stats = Stats::from_rows(&client.stats().await?);
    if ctx.json() {
        return output::json(&stats);
    }
    if stats.queues.is_empty() {
        println!("no jobs yet");
    } else {
        stats.table().print();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_group_by_queue_with_a_total() {
        let row = |queue: &str, state, count, age| QueueStats {
            queue: queue.into(),
            state,
            count,
            oldest_available_secs: age,
        };
        let s = Stats::from_rows(&[
            row("a", JobState::Available, 3, Some(2.0)),
            row("a", JobState::Completed, 5, None),
            row("b", JobState::Available, 1, Some(9.0)),
        ]);
        assert_eq!(s.queues.len(), 2);
        assert_eq!(s.queues[0].counts[&JobState::Completed], 5);
        assert_eq!(s.queues[1].counts[&JobState::Discarded], 0);
        assert_eq!(s.total.counts[&JobState::Available], 4);
        assert_eq!(s.total.oldest_available_secs, Some(9.0));
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["queues"][0]["available"], 3);
        let text = s.table().render();
        assert!(text.starts_with("QUEUE  AVAILABLE"), "{text}");
        assert!(text.lines().last().unwrap().starts_with("total"), "{text}");
    }
}
