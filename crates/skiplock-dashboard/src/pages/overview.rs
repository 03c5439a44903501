//! The overview: every queue with its counts by state, the age of its
//! oldest available job, paused or not, running against its slots, and the
//! last hour's completed and failed attempts and queue times; charts of the
//! last hour (per minute) and day (per hour); the live workers. Its live
//! part updates by server-sent events (`live.rs`) or, failing those, by
//! polling this page for its fragment.

use std::time::Duration;

use askama::Template;
use axum::extract::RawQuery;
use axum::response::Response;
use chrono::{DateTime, TimeDelta, Utc};
use skiplock::{JobState, QueueTimeHistogram, StatsPoint, StatsResolution};

use super::{Ctx, Layout, count, human, relative};
use crate::App;
use crate::chart::{self, Series};
use crate::error::AppError;
use crate::params::Params;

/// One queue's line.
pub(crate) struct QueueRow {
    pub name: String,
    pub paused: bool,
    pub available: String,
    pub scheduled: String,
    pub running: String,
    pub retryable: String,
    pub slots: String,
    pub oldest: String,
    pub completed: String,
    pub failed: String,
    pub p50: String,
    pub p95: String,
}

/// A figure of the summary strip.
pub(crate) struct Figure {
    pub key: &'static str,
    pub label: &'static str,
    pub value: String,
}

/// A live worker, briefly.
pub(crate) struct WorkerLine {
    pub id: String,
    pub host: String,
    pub leader: bool,
    pub running: i32,
    pub slots: i64,
    pub queues: String,
}

/// The live part of the overview.
pub(crate) struct Live {
    pub base: String,
    pub home: String,
    pub queue: String,
    pub queues: Vec<QueueRow>,
    pub figures: Vec<Figure>,
    pub hour_bars: String,
    pub hour_lines: String,
    pub day_bars: String,
    pub counted: String,
    pub stale: bool,
    pub workers: Vec<WorkerLine>,
}

/// The live fragment alone (what `/live` sends and the poll fetches).
#[derive(Template)]
#[template(path = "overview_partial.html")]
pub(crate) struct LivePartial<'a> {
    pub v: &'a Live,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage<'a> {
    l: Layout,
    v: &'a Live,
    live_url: String,
}

/// How old a depth count may be before the page says no leader counts.
const STALE_AFTER: Duration = Duration::from_secs(30);

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "–".to_owned(), human)
}

/// Per-slot sums of one resolution's statistics.
struct Slots {
    completed: Vec<f64>,
    failed: Vec<f64>,
    hist: Vec<QueueTimeHistogram>,
}

fn slots(points: &[StatsPoint], start: DateTime<Utc>, width: i64, n: usize, queue: Option<&str>) -> Slots {
    let mut s = Slots { completed: vec![0.0; n], failed: vec![0.0; n], hist: vec![QueueTimeHistogram::new(); n] };
    for p in points.iter().filter(|p| queue.is_none_or(|q| p.queue == q)) {
        let i = (p.at - start).num_seconds().div_euclid(width);
        let Ok(i) = usize::try_from(i) else { continue };
        if i >= n {
            continue;
        }
        if p.outcome == skiplock::StatsOutcome::Completed {
            s.completed[i] += p.count as f64;
        } else if p.outcome.is_failure() {
            s.failed[i] += p.count as f64;
        }
        s.hist[i].merge(&p.queue_time);
    }
    s
}

/// Reads everything the live part shows: five small reads, none of the
/// jobs table.
pub(crate) async fn load(app: &App, base: &str, queue: Option<&str>) -> Result<Live, AppError> {
    let c = &app.client;
    let now = Utc::now();
    let minute_now = DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(60), 0).unwrap_or(now);
    let hour_start = minute_now - TimeDelta::minutes(59);
    let hour_now = DateTime::from_timestamp(now.timestamp() - now.timestamp().rem_euclid(3600), 0).unwrap_or(now);
    let day_start = hour_now - TimeDelta::hours(23);
    let (depth, summary, minutes, hours, workers) = tokio::try_join!(
        c.queue_depth(),
        c.queues_summary(),
        c.stats_since(hour_start, StatsResolution::Minute),
        c.stats_since(day_start, StatsResolution::Hour),
        c.workers(),
    )?;
    let mins = slots(&minutes, hour_start, 60, 60, queue);
    let days = slots(&hours, day_start, 3600, 24, queue);

    let mut queues = Vec::new();
    let mut totals = [0i64; 4];
    for q in &summary {
        let n = |st| depth.count(&q.name, st);
        let counts = [n(JobState::Available), n(JobState::Scheduled), n(JobState::Running), n(JobState::Retryable)];
        for (t, c) in totals.iter_mut().zip(counts) {
            *t += c;
        }
        let oldest = depth
            .rows
            .iter()
            .find(|r| r.queue == q.name && r.state == JobState::Available)
            .and_then(|r| r.oldest_available_secs)
            .map_or_else(|| "–".to_owned(), |s| human(Duration::from_secs_f64(s.max(0.0))));
        let mine = slots(&minutes, hour_start, 60, 60, Some(&q.name));
        let mut hist = QueueTimeHistogram::new();
        mine.hist.iter().for_each(|h| hist.merge(h));
        queues.push(QueueRow {
            name: q.name.clone(),
            paused: q.paused,
            available: count(counts[0]),
            scheduled: count(counts[1]),
            running: count(counts[2]),
            retryable: count(counts[3]),
            slots: if q.slots > 0 { count(q.slots) } else { "–".to_owned() },
            oldest,
            completed: count(mine.completed.iter().sum::<f64>() as i64),
            failed: count(mine.failed.iter().sum::<f64>() as i64),
            p50: ms(hist.percentile(0.5)),
            p95: ms(hist.percentile(0.95)),
        });
    }
    let done_hour: f64 = mins.completed.iter().sum();
    let failed_hour: f64 = mins.failed.iter().sum();
    let figures = vec![
        Figure { key: "available", label: "available", value: count(totals[0]) },
        Figure { key: "running", label: "running", value: count(totals[2]) },
        Figure { key: "scheduled", label: "scheduled", value: count(totals[1]) },
        Figure { key: "retryable", label: "retryable", value: count(totals[3]) },
        Figure { key: "completed", label: "completed, last hour", value: count(done_hour as i64) },
        Figure { key: "failed", label: "failed, last hour", value: count(failed_hour as i64) },
        Figure { key: "workers", label: "workers", value: count(workers.len() as i64) },
    ];
    let scope = queue.map_or_else(|| "all queues".to_owned(), |q| format!("queue {q}"));
    let hour_bars = chart::bars(
        &format!("Attempts per minute, last hour, {scope}: {} completed, {} failed", done_hour, failed_hour),
        &[
            Series { name: "completed", class: "ok", values: mins.completed },
            Series { name: "failed", class: "bad", values: mins.failed },
        ],
        "60 min ago",
        "now",
    );
    let pct =
        |p: f64| mins.hist.iter().map(|h| h.percentile(p).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)).collect();
    let hour_lines = chart::lines(
        &format!("Queue time per minute, last hour, {scope}: p50 and p95"),
        &[
            Series { name: "p50", class: "p50", values: pct(0.5) },
            Series { name: "p95", class: "p95", values: pct(0.95) },
        ],
        &|v| human(Duration::from_secs_f64(v / 1000.0)),
        "60 min ago",
        "now",
    );
    let day_done: f64 = days.completed.iter().sum();
    let day_failed: f64 = days.failed.iter().sum();
    let day_bars = chart::bars(
        &format!("Attempts per hour, last day, {scope}: {day_done} completed, {day_failed} failed"),
        &[
            Series { name: "completed", class: "ok", values: days.completed },
            Series { name: "failed", class: "bad", values: days.failed },
        ],
        "24 h ago",
        "now",
    );
    let (counted, stale) = match (depth.counted_at, depth.age()) {
        (Some(at), Some(age)) if age <= STALE_AFTER => {
            (format!("counted {}", relative(at, depth.db_now.unwrap_or(now))), false)
        }
        (Some(at), _) => (
            format!("counted {}: no worker leads the maintenance now", relative(at, depth.db_now.unwrap_or(now))),
            true,
        ),
        _ => ("not counted yet: counts appear once a worker leads the maintenance".to_owned(), true),
    };
    let workers = workers
        .iter()
        .map(|w| WorkerLine {
            id: w.id.clone(),
            host: w.host.clone(),
            leader: w.leader,
            running: w.running,
            slots: w.queues.iter().map(|(_, n)| n).sum(),
            queues: w.queues.iter().map(|(q, _)| q.as_str()).collect::<Vec<_>>().join(", "),
        })
        .collect();
    Ok(Live {
        base: base.to_owned(),
        home: super::home(base),
        queue: queue.unwrap_or("").to_owned(),
        queues,
        figures,
        hour_bars,
        hour_lines,
        day_bars,
        counted,
        stale,
        workers,
    })
}

/// `GET /` (`?queue=` narrows the charts to one queue).
pub(crate) async fn page(ctx: Ctx, RawQuery(q): RawQuery) -> Response {
    let p = Params::query(q.as_deref());
    let queue = p.get("queue");
    let live = match load(&ctx.app, &ctx.info.base, queue).await {
        Ok(l) => l,
        Err(e) => return ctx.error(e),
    };
    if ctx.fragment {
        return ctx.render(LivePartial { v: &live }.render());
    }
    let live_url = match queue {
        Some(qn) => format!("{}/live?{}", ctx.info.base, crate::params::query([("queue", qn)])),
        None => format!("{}/live", ctx.info.base),
    };
    let heading = queue.map_or_else(|| "Overview".to_owned(), |qn| format!("Overview: {qn}"));
    ctx.render(OverviewPage { l: ctx.layout("overview", heading), v: &live, live_url }.render())
}
