//! One job: its args and metadata as formatted JSON, tags, every failed
//! attempt with its error and when, timings, progress, lease holder and
//! expiry, unique key, and the actions its state allows.

use askama::Template;
use axum::extract::Path;
use axum::response::Response;
use chrono::Utc;
use skiplock::JobState;

use super::{Ctx, Layout, When, human};
use crate::access::Can;
use crate::error::AppError;

/// A failed attempt.
pub(crate) struct Attempt {
    pub attempt: i32,
    pub at: When,
    pub error: String,
}

#[derive(Template)]
#[template(path = "job.html")]
struct JobPage {
    l: Layout,
    id: i64,
    state: &'static str,
    queue: String,
    kind: String,
    priority: i16,
    attempt: String,
    args: String,
    meta: String,
    progress: Option<String>,
    tags: Vec<String>,
    unique_key: Option<String>,
    leased_by: Option<String>,
    lease_expires: Option<When>,
    timeout: Option<String>,
    created: When,
    run_at: When,
    attempted: Option<When>,
    finished: Option<When>,
    cancel_requested: Option<When>,
    queue_time: Option<String>,
    run_time: Option<String>,
    attempts: Vec<Attempt>,
    can: Can,
    /// Which actions this state allows.
    retry: bool,
    cancel: bool,
    discard: bool,
    delete: bool,
    return_to: String,
}

/// `GET /jobs/{id}`.
pub(crate) async fn page(ctx: Ctx, Path(id): Path<String>) -> Response {
    let Ok(id) = id.trim_start_matches('#').parse::<i64>() else {
        return ctx.error(AppError::Bad(format!("{:?} is not a job id", super::shorten(&id, 40))));
    };
    let job = match ctx.app.client.job(id).await {
        Ok(Some(j)) => j,
        Ok(None) => {
            return ctx.error(AppError::NotFound(format!(
                "No job {id}: it never existed, was deleted, or its archive partition was dropped by retention."
            )));
        }
        Err(e) => return ctx.error(e),
    };
    let now = Utc::now();
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    let progress = job.meta.get("progress").map(pretty);
    let st = job.state;
    let base = &ctx.info.base;
    let page = JobPage {
        l: ctx.layout("jobs", format!("Job {id}")),
        id,
        state: st.as_str(),
        queue: job.queue.clone(),
        kind: job.kind.clone(),
        priority: job.priority,
        attempt: format!("{} of {}", job.attempt, job.max_attempts),
        args: pretty(&job.args),
        meta: pretty(&job.meta),
        progress,
        tags: job.tags.clone(),
        unique_key: job.unique_key.clone(),
        leased_by: job.leased_by.clone(),
        lease_expires: When::opt(job.lease_expires_at, now),
        timeout: job.timeout_ms.map(|ms| human(std::time::Duration::from_millis(ms.max(0) as u64))),
        created: When::of(job.created_at, now),
        run_at: When::of(job.run_at, now),
        attempted: When::opt(job.attempted_at, now),
        finished: When::opt(job.finished_at, now),
        cancel_requested: When::opt(job.cancel_requested_at, now),
        queue_time: job.attempted_at.and_then(|a| (a - job.run_at).to_std().ok()).map(human),
        run_time: match (job.attempted_at, job.finished_at) {
            (Some(a), Some(f)) => (f - a).to_std().ok().map(human),
            (Some(a), None) if st == JobState::Running => {
                (now - a).to_std().ok().map(|d| format!("{} so far", human(d)))
            }
            _ => None,
        },
        attempts: job
            .errors
            .iter()
            .rev()
            .map(|e| Attempt { attempt: e.attempt, at: When::of(e.at, now), error: e.error.clone() })
            .collect(),
        can: ctx.can(),
        retry: st != JobState::Running,
        cancel: !st.is_final(),
        discard: !st.is_final() && st != JobState::Running,
        delete: st != JobState::Running,
        return_to: format!("{base}/jobs/{id}"),
    };
    ctx.render(page.render())
}
