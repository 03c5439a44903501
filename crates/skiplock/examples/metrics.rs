//! Metrics from a library user's point of view: install the Prometheus
//! recorder yourself (skiplock records through the `metrics` facade and
//! installs nothing), and serve it from your own axum app beside your routes.
//!
//! `cargo run -p skiplock --example metrics` starts a private PostgreSQL for
//! the run (set DATABASE_URL to use yours), works 100 jobs, prints what
//! `GET /metrics` answers about them, and exits. In a service, keep the app
//! running and point Prometheus at it.

use serde::{Deserialize, Serialize};
use skiplock::{Client, EnqueueOptions, Event, Job, JobContext, JobError, NewJob, Worker};

#[derive(Serialize, Deserialize)]
struct Resize {
    image: u32,
}

impl Job for Resize {
    const KIND: &'static str = "resize";
}

async fn resize(_job: Resize, _ctx: JobContext) -> Result<(), JobError> {
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // One recorder per process, installed before anything records.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;
    let app = axum::Router::new().route("/metrics", axum::routing::get(move || async move { prometheus.render() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (_cluster, url) = skiplock_testdb::url_or_private(Default::default())?;
    let client = Client::connect(&url)?;
    client.migrate().await?;
    let worker = Worker::builder(client.clone()).queue("images", 4).register(resize).build()?;
    let mut events = worker.subscribe();
    let handle = worker.start();
    let jobs =
        (0..100).map(|image| NewJob::new(Resize::KIND, &Resize { image }, EnqueueOptions::new().queue("images")));
    client.enqueue_many(jobs.collect::<Result<Vec<_>, _>>()?).await?;
    let mut done = 0;
    while done < 100 {
        if let Event::Finished { .. } = events.recv().await? {
            done += 1;
        }
    }
    handle.shutdown().await;

    // What a scraper sees (any HTTP client would do; this one is plain TCP).
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await?;
    let mut text = String::new();
    s.read_to_string(&mut text).await?;
    for line in text.lines().filter(|l| l.starts_with("skiplock_jobs_completed_total")) {
        println!("{line}");
    }
    Ok(())
}
