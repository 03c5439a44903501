//! Feature `opentelemetry`: the trace of the request that enqueued a job
//! goes on in the worker. Spans go to an in-memory exporter through
//! `tracing-opentelemetry`, as an application's would go to its collector.

use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use skiplock::{EnqueueOptions, Event, NewJob, Worker};
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::support::{fresh, wait_for};

// One thread: the subscriber set for this test is the thread's, and the
// worker's tasks run on it too.
#[tokio::test(flavor = "current_thread")]
async fn the_handler_s_span_continues_the_trace_of_the_request_that_enqueued() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    let _default = tracing::subscriber::set_default(subscriber);

    let t = fresh().await;
    let request = tracing::info_span!("POST /signup");
    let (trace_id, request_span_id) = {
        let cx = request.context();
        let sc = cx.span().span_context().clone();
        (sc.trace_id(), sc.span_id())
    };
    let id = async { t.client.enqueue_many(vec![NewJob::new("welcome", &(), EnqueueOptions::new()).unwrap()]).await }
        .instrument(request.clone())
        .await
        .unwrap()[0]
        .id;
    drop(request);
    let row = t.client.job(id).await.unwrap().unwrap();
    let traceparent = row.meta["traceparent"].as_str().expect("a traceparent in the job's metadata");
    assert_eq!(traceparent, format!("00-{trace_id}-{request_span_id}-01"));

    let worker = Worker::builder(t.client.clone())
        .queue("default", 1)
        .register_raw("welcome", None, |_args, _ctx| async {
            tracing::info_span!("send email").in_scope(|| ());
            Ok(())
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::Finished { .. })).await;
    handle.shutdown().await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let job = spans.iter().find(|s| s.name == "skiplock.job").expect("the job's span was exported");
    assert_eq!(job.span_context.trace_id(), trace_id, "the same trace");
    assert_eq!(job.parent_span_id, request_span_id, "its parent is the request's span");
    let email = spans.iter().find(|s| s.name == "send email").expect("the handler's own span");
    assert_eq!(email.span_context.trace_id(), trace_id);
    assert_eq!(email.parent_span_id, job.span_context.span_id(), "the handler's spans nest under the job's");
}

/// Outside any traced span nothing is added to the metadata.
#[tokio::test(flavor = "current_thread")]
async fn without_a_trace_no_traceparent_is_stored() {
    let t = fresh().await;
    let id = t.client.enqueue_many(vec![NewJob::new("k", &(), EnqueueOptions::new()).unwrap()]).await.unwrap()[0].id;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert!(row.meta.get("traceparent").is_none(), "{}", row.meta);
}
