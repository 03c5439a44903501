//! The dashboard's statements (`insights/`): the job search, bulk actions,
//! the workers registry, queue depth and per-minute statistics, periodic
//! jobs' switches; and the statistics the runtime and the leader write.
//! Each function takes an [`On`] and returns the library's `Result`.

use chrono::{DateTime, Utc};
use tokio_postgres::Row;

use super::On;
use crate::error::Result;

/// The filters of a job search, as the statements take them.
pub(crate) struct SearchParams<'a> {
    pub states: Option<Vec<&'static str>>,
    pub queue: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub tag: Option<&'a str>,
    pub id: Option<i64>,
    pub args: Option<&'a serde_json::Value>,
    pub args_path: Option<&'a [String]>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub max_id: Option<i64>,
}

/// One page of the search, at most `limit` rows.
pub(crate) async fn jobs_search(on: On<'_>, p: &SearchParams<'_>, limit: i32) -> Result<Vec<Row>> {
    on.run(
        &on.s.insights_jobs_search,
        &[&p.states, &p.queue, &p.kind, &p.tag, &p.id, &p.args, &p.args_path, &p.before, &p.after, &p.max_id, &limit],
    )
    .await
}

/// How many jobs match `p` (its cursors aside), up to `cap` in each table.
pub(crate) async fn jobs_count(on: On<'_>, p: &SearchParams<'_>, cap: i64) -> Result<i64> {
    let rows = on
        .run(
            &on.s.insights_jobs_count,
            &[&p.states, &p.queue, &p.kind, &p.tag, &p.id, &p.args, &p.args_path, &p.max_id, &cap],
        )
        .await?;
    Ok(rows.first().map_or(0, |r| r.get(0)))
}

/// The highest job id there is (0: none).
pub(crate) async fn jobs_max_id(on: On<'_>) -> Result<i64> {
    let rows = on.run(&on.s.insights_jobs_max_id, &[]).await?;
    Ok(rows.first().map_or(0, |r| r.get(0)))
}

/// Discards the unfinished, not running jobs of `ids`; returns those discarded.
pub(crate) async fn jobs_discard(on: On<'_>, ids: &[i64]) -> Result<Vec<i64>> {
    Ok(on.run(&on.s.insights_jobs_discard, &[&ids]).await?.iter().map(|r| r.get(0)).collect())
}

/// Deletes the jobs of `ids` (not running ones); returns those deleted.
pub(crate) async fn jobs_delete(on: On<'_>, ids: &[i64]) -> Result<Vec<i64>> {
    Ok(on.run(&on.s.insights_jobs_delete, &[&ids]).await?.iter().map(|r| r.get(0)).collect())
}

/// The live workers.
pub(crate) async fn workers(on: On<'_>) -> Result<Vec<Row>> {
    on.run(&on.s.insights_workers, &[]).await
}

/// The last depth count.
pub(crate) async fn depth(on: On<'_>) -> Result<Vec<Row>> {
    on.run(&on.s.insights_depth, &[]).await
}

/// The queues to show.
pub(crate) async fn queues(on: On<'_>) -> Result<Vec<Row>> {
    on.run(&on.s.insights_queues, &[]).await
}

/// Statistics rows from `since`, per minute or per hour.
pub(crate) async fn stats(on: On<'_>, since: DateTime<Utc>, hourly: bool) -> Result<Vec<Row>> {
    let st = if hourly { &on.s.insights_stats_hours } else { &on.s.insights_stats_minutes };
    on.run(st, &[&since]).await
}

/// Every periodic job's row, with its pause flag.
pub(crate) async fn periodic_list(on: On<'_>) -> Result<Vec<Row>> {
    on.run(&on.s.insights_periodic_list, &[]).await
}

/// Pauses or resumes a periodic job; false if there is none by that name.
pub(crate) async fn periodic_set_paused(on: On<'_>, name: &str, paused: bool) -> Result<bool> {
    Ok(!on.run(&on.s.insights_periodic_set_paused, &[&name, &paused]).await?.is_empty())
}

/// Brings a periodic job's next run forward to now; false if there is none
/// by that name, or it is paused.
pub(crate) async fn periodic_run_now(on: On<'_>, name: &str) -> Result<bool> {
    Ok(!on.run(&on.s.insights_periodic_run_now, &[&name]).await?.is_empty())
}

/// A worker's statistics rows, as column arrays.
#[derive(Debug, Default)]
pub(crate) struct StatsRows {
    pub minutes: Vec<DateTime<Utc>>,
    pub queues: Vec<String>,
    pub kinds: Vec<String>,
    pub outcomes: Vec<&'static str>,
    pub counts: Vec<i64>,
    /// `bigint[]` literals.
    pub hists: Vec<String>,
}

/// Upserts a worker's statistics rows.
pub(crate) async fn stats_write(on: On<'_>, worker: &str, r: &StatsRows) -> Result<()> {
    on.run(&on.s.insights_stats_write, &[&worker, &r.minutes, &r.queues, &r.kinds, &r.outcomes, &r.counts, &r.hists])
        .await?;
    Ok(())
}

/// Merges up to `limit` workers' rows of minutes before `before`; returns
/// how many were merged.
pub(crate) async fn stats_rollup(on: On<'_>, before: DateTime<Utc>, limit: i64) -> Result<i64> {
    let rows = on.run(&on.s.insights_stats_rollup, &[&before, &limit]).await?;
    Ok(rows.first().map_or(0, |r| r.get(0)))
}

/// Deletes up to `limit` merged minute rows before `minutes` and hour rows
/// before `hours`; returns how many went.
pub(crate) async fn stats_prune(on: On<'_>, minutes: DateTime<Utc>, hours: DateTime<Utc>, limit: i64) -> Result<i64> {
    let rows = on.run(&on.s.insights_stats_prune, &[&minutes, &hours, &limit]).await?;
    Ok(rows.first().map_or(0, |r| r.get(0)))
}

/// Counts the hot table into `queue_depth`; returns the (queue, state)
/// pairs found.
pub(crate) async fn depth_count(on: On<'_>, previous_took_ms: f64) -> Result<i64> {
    let rows = on.run(&on.s.insights_depth_count, &[&previous_took_ms]).await?;
    Ok(rows.first().map_or(0, |r| r.get(0)))
}
