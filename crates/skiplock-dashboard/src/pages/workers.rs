//! The workers: the live processes of the workers registry, their queues
//! and slots, what they run, their last heartbeat; and the health of the
//! figures (who leads, how fresh the depth count is).

use askama::Template;
use axum::response::Response;
use chrono::Utc;

use super::{Ctx, Layout, When, human};

/// A worker's line.
pub(crate) struct Line {
    pub id: String,
    pub host: String,
    pub pid: i32,
    pub queues: Vec<(String, i64)>,
    pub running: i32,
    pub slots: i64,
    pub started: When,
    pub seen: When,
    pub leader: bool,
    pub lease: String,
}

#[derive(Template)]
#[template(path = "workers.html")]
struct WorkersPage {
    l: Layout,
    rows: Vec<Line>,
    leader: Option<String>,
    leader_until: Option<When>,
    counted: Option<When>,
    count_took: Option<String>,
    /// `Client::health`'s findings: (check, message, what to do).
    findings: Vec<(String, String, String)>,
    /// Its figures in one line each.
    figures: Vec<(&'static str, String)>,
}

/// `GET /workers`.
pub(crate) async fn page(ctx: Ctx) -> Response {
    let c = &ctx.app.client;
    let (workers, leader, depth, health) = match tokio::try_join!(c.workers(), c.leader(), c.queue_depth(), c.health())
    {
        Ok(x) => x,
        Err(e) => return ctx.error(e),
    };
    let now = depth.db_now.unwrap_or_else(Utc::now);
    let rows = workers
        .iter()
        .map(|w| Line {
            id: w.id.clone(),
            host: w.host.clone(),
            pid: w.pid,
            queues: w.queues.clone(),
            running: w.running,
            slots: w.queues.iter().map(|(_, n)| n).sum(),
            started: When::of(w.started_at, now),
            seen: When::of(w.seen_at, now),
            leader: w.leader,
            lease: human(w.lease),
        })
        .collect();
    let page = WorkersPage {
        l: ctx.layout("workers", "Workers"),
        rows,
        leader: leader.as_ref().map(|l| l.id.clone()),
        leader_until: leader.as_ref().map(|l| When::of(l.expires_at, now)),
        counted: When::opt(depth.counted_at, now),
        count_took: depth.took.map(human),
        findings: health.findings.iter().map(|f| (f.check.to_owned(), f.message.clone(), f.advice.clone())).collect(),
        figures: figures(&health),
    };
    ctx.render(page.render())
}

/// The health figures as the page lists them.
fn figures(h: &skiplock::Health) -> Vec<(&'static str, String)> {
    let t = &h.hot_table;
    let mut out = vec![("Hot table", format!("{} live, {} dead tuples", t.live_tuples, t.dead_tuples))];
    out.push((
        "Oldest xmin",
        match &h.oldest_xmin {
            None => "nothing holds it back".to_owned(),
            Some(x) => format!(
                "{} {}{}",
                x.kind,
                x.who,
                x.age_secs
                    .map(|s| format!(", {}", human(std::time::Duration::from_secs_f64(s.max(0.0)))))
                    .unwrap_or_default()
            ),
        },
    ));
    out.push(("NOTIFY queue", format!("{:.1}% full", h.notify_queue_usage * 100.0)));
    out.push(("Stuck running", h.stuck_running.count.to_string()));
    let p = &h.archive_partitions;
    out.push(("Archive days ahead", format!("{}{}", p.days_ahead, if p.has_today { "" } else { " (none for today)" })));
    out
}
