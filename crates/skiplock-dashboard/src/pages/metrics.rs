//! `GET /metrics`: the queue depth in Prometheus' text format, from the
//! leader's last count (never the jobs table), for a scraper that has no
//! recorder in the workers.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::fmt::Write as _;

use super::Ctx;

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `GET /metrics`.
pub(crate) async fn page(ctx: Ctx) -> Response {
    let depth = match ctx.app.client.queue_depth().await {
        Ok(d) => d,
        Err(e) => return ctx.error(e),
    };
    let mut out = String::new();
    out.push_str("# HELP skiplock_queue_jobs Unfinished jobs by queue and state, as last counted by the leader.\n");
    out.push_str("# TYPE skiplock_queue_jobs gauge\n");
    for r in &depth.rows {
        let _ = writeln!(out, "skiplock_queue_jobs{{queue=\"{}\",state=\"{}\"}} {}", label(&r.queue), r.state, r.count);
    }
    out.push_str("# HELP skiplock_queue_oldest_available_seconds Age of each queue's oldest available job.\n");
    out.push_str("# TYPE skiplock_queue_oldest_available_seconds gauge\n");
    for r in depth.rows.iter().filter(|r| r.oldest_available_secs.is_some()) {
        let _ = writeln!(
            out,
            "skiplock_queue_oldest_available_seconds{{queue=\"{}\"}} {}",
            label(&r.queue),
            r.oldest_available_secs.unwrap_or(0.0)
        );
    }
    if let Some(age) = depth.age() {
        out.push_str("# HELP skiplock_queue_depth_age_seconds How old the depth count is.\n");
        out.push_str("# TYPE skiplock_queue_depth_age_seconds gauge\n");
        let _ = writeln!(out, "skiplock_queue_depth_age_seconds {}", age.as_secs_f64());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn operations_md_lists_every_metric_served() {
        let ops = include_str!("../../../../docs/OPERATIONS.md");
        let page = include_str!("metrics.rs").split("#[cfg(test)]").next().unwrap();
        let mut names: Vec<&str> = page
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("skiplock_"))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 3, "{names:?}");
        for name in names {
            assert!(ops.contains(&format!("`{name}`")), "docs/OPERATIONS.md does not list {name}");
        }
    }
}
