//! The periodic jobs: schedule, last and next run, paused or not; pause,
//! resume and run now.

use askama::Template;
use axum::response::Response;

use super::{Ctx, Layout, When};
use crate::access::Can;

/// A periodic job's line.
pub(crate) struct Line {
    pub name: String,
    pub schedule: String,
    pub next: When,
    pub last: Option<When>,
    pub paused: bool,
}

#[derive(Template)]
#[template(path = "periodic.html")]
struct PeriodicPage {
    l: Layout,
    rows: Vec<Line>,
    can: Can,
}

/// `GET /periodic`.
pub(crate) async fn page(ctx: Ctx) -> Response {
    let entries = match ctx.app.client.periodic_entries().await {
        Ok(e) => e,
        Err(e) => return ctx.error(e),
    };
    let rows = entries
        .iter()
        .map(|e| Line {
            name: e.name.clone(),
            schedule: e.schedule.clone(),
            next: When::of(e.next_run_at, e.db_now),
            last: When::opt(e.last_run_at, e.db_now),
            paused: e.paused,
        })
        .collect();
    ctx.render(PeriodicPage { l: ctx.layout("periodic", "Periodic jobs"), rows, can: ctx.can() }.render())
}
