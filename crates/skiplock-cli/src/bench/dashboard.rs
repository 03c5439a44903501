//! W6 dashboard: how long a dashboard page takes to render beside an
//! archive of a million finished jobs (the target: a jobs page under
//! 50 ms). The dashboard is served on loopback and each page fetched whole
//! over HTTP, one request at a time, as a browser would: the time is from
//! sending the request to the last byte of the page.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::db::Db;
use super::report::{Row, Section, Unit, thousands};
use super::stats::percentile;
use super::{Scale, progress};

/// Archived jobs per fill statement (each its own transaction).
const FILL_CHUNK: u64 = 250_000;
/// Waiting jobs beside the archive.
const HOT: u64 = 10_000;
/// The target for a jobs page.
const TARGET_MS: f64 = 50.0;

/// Fetches `path` whole; its status line must be 200.
async fn fetch(addr: std::net::SocketAddr, path: &str) -> Result<Duration> {
    let started = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut body = Vec::new();
    s.read_to_end(&mut body).await?;
    let took = started.elapsed();
    let head = String::from_utf8_lossy(&body[..body.len().min(64)]).into_owned();
    ensure!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
    Ok(took)
}

pub async fn run(db: &Db, scale: &Scale) -> Result<Section> {
    let archived = scale.dashboard_archived;
    let admin = db.admin();
    admin.batch_execute("SELECT skiplock_bench.archive_partitions_ensure(now(), 0)").await?;
    let mut from = 1u64;
    while from <= archived {
        let n = FILL_CHUNK.min(archived - from + 1);
        admin.execute(include_str!("dashboard/fill_archive.sql"), &[&(from as i64), &(n as i64)]).await?;
        from += n;
        progress(&format!("W6: {} of {} jobs archived", thousands(from as i64 - 1), thousands(archived as i64)));
    }
    admin
        .execute(
            "INSERT INTO skiplock_bench.jobs (id, queue, kind, args) \
             SELECT $1::bigint + g, 'q1', 'bench.noop', jsonb_build_object('i', g) FROM generate_series(1, $2::bigint) g",
            &[&(archived as i64), &(HOT as i64)],
        )
        .await?;
    admin.batch_execute("ANALYZE skiplock_bench.jobs_archive; ANALYZE skiplock_bench.jobs").await?;
    let client = db.client(8)?;
    // The depth table as a leader would have counted it.
    let m = skiplock::Maintenance::builder(client.clone()).id("bench-w6").build()?;
    ensure!(m.elect().await?, "W6: could not lead, to count the queue depth");
    m.stats_once(None).await?;
    m.resign().await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let router = skiplock_dashboard::Dashboard::new(client.clone()).router();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let deep = archived / 2;
    let pages: Vec<(String, String)> = vec![
        ("jobs, newest".into(), "/jobs".into()),
        (format!("jobs, below id {}", thousands(deep as i64)), format!("/jobs?before={deep}")),
        ("jobs, state discarded".into(), "/jobs?state=discarded".into()),
        ("jobs, a rare queue".into(), "/jobs?queue=rare".into()),
        ("jobs, kind and state".into(), "/jobs?kind=bench.k19&state=completed".into()),
        ("jobs, tag".into(), "/jobs?tag=vip".into()),
        ("jobs, value in args".into(), "/jobs?args=user%3D7".into()),
        ("job page".into(), format!("/jobs/{}", deep / 20 * 20)),
        ("overview".into(), "/".into()),
    ];
    let mut rows: Vec<(String, Vec<f64>, Vec<f64>)> = pages.iter().map(|(l, _)| (l.clone(), vec![], vec![])).collect();
    let requests = scale.dashboard_requests;
    for run in 1..=scale.runs {
        progress(&format!("W6 run {run}/{}: {} pages, {requests} requests each", scale.runs, pages.len()));
        for (i, (_, path)) in pages.iter().enumerate() {
            fetch(addr, path).await?; // warm: plans, caches
            let mut ms = Vec::with_capacity(requests);
            for _ in 0..requests {
                ms.push(fetch(addr, path).await?.as_secs_f64() * 1000.0);
            }
            rows[i].1.push(percentile(&ms, 0.5).unwrap_or(f64::NAN));
            rows[i].2.push(percentile(&ms, 0.95).unwrap_or(f64::NAN));
        }
    }
    server.abort();
    let mut s = Section::new(
        "w6",
        "dashboard",
        format!(
            "The dashboard (skiplock-dashboard, served on loopback) beside {} archived jobs in today's partition \
             (90% completed, 5% cancelled, 5% discarded; ten queues, one rare; twenty kinds; 1 in 500 tagged) and \
             {} waiting: each page fetched whole over HTTP {requests} times in a row after one warm-up; p50 and p95 \
             of the time from request to last byte. Target: a jobs page under {TARGET_MS} ms.",
            thousands(archived as i64),
            thousands(HOT as i64)
        ),
        scale.runs,
    );
    for (label, p50, p95) in rows {
        s.rows.push(Row::new(&label, "p50", Unit::Millis, p50));
        s.rows.push(Row::new(&label, "p95", Unit::Millis, p95));
    }
    Ok(s)
}
