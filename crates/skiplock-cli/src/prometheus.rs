//! Prometheus text on `/metrics`, through `metrics-exporter-prometheus`:
//! the recorder every metric of the library (docs/OPERATIONS.md, "Metrics")
//! goes to, with histogram buckets for its seconds.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Buckets of every `_seconds` histogram: a millisecond to five minutes.
const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

fn builder() -> Result<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
        .context("histogram buckets")
}

/// Installs the recorder; its handle renders the text (the dashboard's
/// `/metrics`).
pub fn install() -> Result<metrics_exporter_prometheus::PrometheusHandle> {
    builder()?.install_recorder().context("cannot install the metrics recorder")
}

/// Installs the recorder and serves it over HTTP on `addr` (any path;
/// `/metrics` by convention), from a task of the current runtime. `flag`
/// names the option in errors.
pub fn listen(flag: &str, addr: SocketAddr) -> Result<()> {
    builder()?.with_http_listener(addr).install().with_context(|| format!("{flag} {addr}: cannot serve metrics"))
}
