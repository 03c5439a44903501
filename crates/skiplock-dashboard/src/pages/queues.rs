//! The queues: counts from the last depth count, slots of live workers,
//! pause and resume.

use askama::Template;
use axum::response::Response;
use skiplock::JobState;

use super::{Ctx, Layout, count};
use crate::access::Can;

/// A queue's line.
pub(crate) struct Line {
    pub name: String,
    pub paused: bool,
    pub available: String,
    pub scheduled: String,
    pub running: String,
    pub retryable: String,
    pub slots: String,
}

#[derive(Template)]
#[template(path = "queues.html")]
struct QueuesPage {
    l: Layout,
    rows: Vec<Line>,
    can: Can,
}

/// `GET /queues`.
pub(crate) async fn page(ctx: Ctx) -> Response {
    let c = &ctx.app.client;
    let (summary, depth) = match tokio::try_join!(c.queues_summary(), c.queue_depth()) {
        Ok(x) => x,
        Err(e) => return ctx.error(e),
    };
    let rows = summary
        .iter()
        .map(|q| Line {
            name: q.name.clone(),
            paused: q.paused,
            available: count(depth.count(&q.name, JobState::Available)),
            scheduled: count(depth.count(&q.name, JobState::Scheduled)),
            running: count(depth.count(&q.name, JobState::Running)),
            retryable: count(depth.count(&q.name, JobState::Retryable)),
            slots: if q.slots > 0 { count(q.slots) } else { "–".to_owned() },
        })
        .collect();
    ctx.render(QueuesPage { l: ctx.layout("queues", "Queues"), rows, can: ctx.can() }.render())
}
