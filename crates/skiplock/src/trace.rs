//! W3C trace context across the queue (feature `opentelemetry`): an enqueue
//! made inside a traced span stores that span's `traceparent` (and
//! `tracestate`) in the job's metadata; the worker's `skiplock.job` span for
//! each attempt takes it as its parent, so one trace shows the request that
//! enqueued and every attempt that ran. Through `tracing-opentelemetry`: the
//! application installs its layer and exporter as usual; without them (or
//! outside any span) nothing is stored.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The metadata keys, as the W3C headers are named.
const KEYS: [&str; 2] = ["traceparent", "tracestate"];

/// `meta` with the current span's trace context added (a `traceparent` the
/// caller set is kept).
pub(crate) fn inject(meta: Option<serde_json::Value>) -> Option<serde_json::Value> {
    let cx = tracing::Span::current().context();
    if !cx.span().span_context().is_valid() {
        return meta;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    let mut meta = meta.unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    if let Some(obj) = meta.as_object_mut()
        && !obj.contains_key("traceparent")
    {
        for (k, v) in carrier.into_iter().filter(|(k, v)| KEYS.contains(&k.as_str()) && !v.is_empty()) {
            obj.insert(k, serde_json::Value::String(v));
        }
    }
    Some(meta)
}

/// Makes `span` continue the trace whose context `meta` carries, if any.
pub(crate) fn continue_in(span: &tracing::Span, meta: &serde_json::Value) {
    let Some(obj) = meta.as_object() else { return };
    let carrier: HashMap<String, String> = KEYS
        .iter()
        .filter_map(|k| obj.get(*k).and_then(|v| v.as_str()).map(|v| ((*k).to_owned(), v.to_owned())))
        .collect();
    if !carrier.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}
