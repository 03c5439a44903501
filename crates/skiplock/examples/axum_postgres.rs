//! The twin of `examples/axum_sqlx.rs` without sqlx: one `deadpool-postgres`
//! pool for the web app and the queue (`ClientBuilder::pool`), the signup
//! handler's user and welcome email in one transaction, a worker in the same
//! process with the app's state, a periodic cleanup, and ctrl-c stopping the
//! HTTP server first, then the worker.
//!
//! ```text
//! cargo run -p skiplock --example axum_postgres
//! curl -d name=ada http://127.0.0.1:3000/signup
//! ```
//!
//! It starts a private PostgreSQL for the run unless DATABASE_URL names
//! yours; `--self-test` signs one user up through its own HTTP server, waits
//! for the email, and stops.

use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use skiplock::deadpool_postgres::{Manager, Pool};
use skiplock::tokio_postgres::NoTls;
use skiplock::{Client, EnqueueOptions, Event, Job, JobContext, JobError, PeriodicJob, Worker};

/// What every HTTP handler and every job handler gets: cheap to clone.
#[derive(Clone)]
struct App {
    db: Pool,
    jobs: Client,
}

#[derive(Serialize, Deserialize)]
struct Welcome {
    user_id: i64,
}

impl Job for Welcome {
    const KIND: &'static str = "welcome";
    const QUEUE: &'static str = "mail";
    const MAX_ATTEMPTS: i32 = 5;
}

#[derive(Serialize, Deserialize)]
struct Cleanup;

impl Job for Cleanup {
    const KIND: &'static str = "cleanup";
}

#[derive(Deserialize)]
struct Signup {
    name: String,
}

/// POST /signup: the user and their welcome email commit together.
async fn signup(State(app): State<App>, Form(form): Form<Signup>) -> Result<String, AppError> {
    let mut conn = app.db.get().await?;
    let tx = conn.transaction().await?;
    let row = tx.query_one("INSERT INTO users (name) VALUES ($1) RETURNING id", &[&form.name]).await?;
    let user_id: i64 = row.get(0);
    let job = app.jobs.enqueue_tx(&tx, &Welcome { user_id }, EnqueueOptions::new()).await?;
    tx.commit().await?;
    Ok(format!("welcome, {} (user {user_id}, email job {})\n", form.name, job.id))
}

/// The welcome email's handler, with the app's state.
async fn welcome(job: Welcome, ctx: JobContext, skiplock::State(app): skiplock::State<App>) -> Result<(), JobError> {
    let conn = app.db.get().await?;
    let row = conn.query_one("SELECT name FROM users WHERE id = $1", &[&job.user_id]).await?;
    let name: String = row.get(0);
    println!("sending the welcome email to {name} (job {}, attempt {})", ctx.id(), ctx.attempt());
    conn.execute("UPDATE users SET welcomed_at = now() WHERE id = $1", &[&job.user_id]).await?;
    Ok(())
}

/// Every minute: forget signups that never got their email within a day.
async fn cleanup(_job: Cleanup, _ctx: JobContext, skiplock::State(app): skiplock::State<App>) -> Result<(), JobError> {
    let conn = app.db.get().await?;
    conn.execute("DELETE FROM users WHERE welcomed_at IS NULL AND created_at < now() - interval '1 day'", &[]).await?;
    Ok(())
}

/// The HTTP side of a failure: 500, with the error in the log only.
struct AppError(String);

impl<E: std::fmt::Display> From<E> for AppError {
    fn from(e: E) -> Self {
        AppError(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        eprintln!("signup failed: {}", self.0);
        (StatusCode::INTERNAL_SERVER_ERROR, "something went wrong\n").into_response()
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let self_test = std::env::args().any(|a| a == "--self-test");
    let (_cluster, url) = skiplock_testdb::url_or_private(Default::default())?;

    // One pool for both: the app's queries and the queue's statements. Sized
    // for the worker's share (queues × 2 + 11, docs/OPERATIONS.md,
    // "Connections") and the app's. skiplock sets no session option on it.
    let mut cfg: skiplock::tokio_postgres::Config = url.parse()?;
    cfg.application_name("signup-app");
    let db = Pool::builder(Manager::new(cfg, NoTls)).max_size(24).build()?;
    let jobs = Client::builder(&url).pool(db.clone()).application_name("signup-jobs").build()?;
    jobs.migrate().await?;
    db.get()
        .await?
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS users (id bigserial PRIMARY KEY, name text NOT NULL,
                 created_at timestamptz NOT NULL DEFAULT now(), welcomed_at timestamptz)",
        )
        .await?;
    let app_db = db.clone();
    let app = App { db, jobs: jobs.clone() };

    let worker = Worker::builder(jobs)
        .queue("mail", 10)
        .queue("default", 2)
        .register_with(app.clone(), welcome)
        .register_with(app.clone(), cleanup)
        .periodic(PeriodicJob::every("cleanup", Duration::from_secs(60)).job(&Cleanup, EnqueueOptions::new()))
        .build()?;
    let mut events = worker.subscribe();
    let worker = worker.start();

    let router = axum::Router::new().route("/signup", post(signup)).with_state(app);
    let listener = tokio::net::TcpListener::bind(if self_test { "127.0.0.1:0" } else { "127.0.0.1:3000" }).await?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}; try: curl -d name=ada http://{addr}/signup");

    let stop = tokio_util::sync::CancellationToken::new();
    let stopper = stop.clone();
    tokio::spawn(async move {
        if self_test {
            let answer = post_form(addr, "/signup", "name=ada").await.expect("the signup request");
            println!("{}", answer.lines().last().unwrap_or_default());
            let mut welcome = None;
            loop {
                match events.recv().await {
                    Ok(Event::Started { id, kind, .. }) if kind == Welcome::KIND => welcome = Some(id),
                    Ok(Event::Finished { id, state: skiplock::JobState::Completed, .. }) if Some(id) == welcome => {
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => panic!("the worker's events ended: {e}"),
                }
            }
        } else {
            let _ = tokio::signal::ctrl_c().await;
        }
        stopper.cancel();
    });
    // The server first (requests in flight may still enqueue), then the
    // worker (running jobs finish; the rest go back to the queue).
    axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await?;
    if self_test {
        // What is open now, by application_name: the one shared pool, and
        // skiplock's own heartbeat and LISTEN connections.
        let rows = app_db
            .get()
            .await?
            .query(
                "SELECT application_name, count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name LIKE 'signup-%' GROUP BY 1 ORDER BY 1",
                &[],
            )
            .await?;
        let open: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        println!("connections open: {open:?}");
    }
    worker.shutdown().await;
    println!("stopped");
    Ok(())
}

/// One form POST over plain HTTP/1.1: the self-test's client.
async fn post_form(addr: std::net::SocketAddr, path: &str, body: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).await?;
    Ok(answer)
}
