//! `GET /metrics`: Prometheus text through `metrics-exporter-prometheus`.
//! At each scrape the leader's last depth count (a few small rows, never the
//! jobs table) is recorded as gauges ([`skiplock::DepthGauges`]), then the
//! recorder is rendered: the process's own recorder when one was handed to
//! [`Dashboard::metrics`](crate::Dashboard::metrics) (so the page carries
//! every metric the process records), else a recorder of the dashboard's
//! own holding just the depth.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

use super::Ctx;

/// Where the page's text comes from.
pub(crate) enum Source {
    /// The process's installed recorder.
    Installed(PrometheusHandle),
    /// The dashboard's own, not installed: only the depth is recorded in it.
    Own(PrometheusRecorder),
}

impl Source {
    /// A recorder of the dashboard's own.
    pub fn own() -> Source {
        Source::Own(metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder())
    }
}

/// `GET /metrics`.
pub(crate) async fn page(ctx: Ctx) -> Response {
    let depth = match ctx.app.client.queue_depth().await {
        Ok(d) => d,
        Err(e) => return ctx.error(e),
    };
    let text = match &ctx.app.metrics {
        Source::Installed(handle) => {
            ctx.app.depth_gauges.record(&depth);
            handle.render()
        }
        Source::Own(recorder) => {
            metrics::with_local_recorder(recorder, || ctx.app.depth_gauges.record(&depth));
            recorder.handle().render()
        }
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}
