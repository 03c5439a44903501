//! A web service's first hour with skiplock, with sqlx: the signup handler
//! inserts a user and enqueues their welcome email in one transaction (both
//! or neither), a worker in the same process sends it with the app's state,
//! a periodic job cleans up, and ctrl-c stops the HTTP server first (a
//! request in flight may still enqueue), then the worker (running jobs
//! finish).
//!
//! ```text
//! cargo run -p skiplock --features sqlx --example axum_sqlx
//! curl -d name=ada http://127.0.0.1:3000/signup
//! ```
//!
//! It starts a private PostgreSQL for the run unless DATABASE_URL names
//! yours. `--self-test` signs one user up through the HTTP server itself,
//! waits for the welcome email, and stops (the test suite runs it so).
//! The twin without sqlx is `examples/axum_postgres.rs`.

use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use skiplock::{Client, EnqueueOptions, Event, Job, JobContext, JobError, PeriodicJob, Worker};

/// What every HTTP handler and every job handler gets: cheap to clone.
#[derive(Clone)]
struct App {
    db: sqlx::PgPool,
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
    let mut tx = app.db.begin().await?;
    let (user_id,): (i64,) = sqlx::query_as("INSERT INTO users (name) VALUES ($1) RETURNING id")
        .bind(&form.name)
        .fetch_one(&mut *tx)
        .await?;
    let job = app.jobs.enqueue_sqlx_tx(&mut *tx, &Welcome { user_id }, EnqueueOptions::new()).await?;
    tx.commit().await?;
    Ok(format!("welcome, {} (user {user_id}, email job {})\n", form.name, job.id))
}

/// The welcome email's handler, with the app's state (`skiplock::State`,
/// as axum's `State`). Any error fails the attempt: it is logged (WARN)
/// and retried with backoff; after the fifth, discarded (ERROR).
async fn welcome(job: Welcome, ctx: JobContext, skiplock::State(app): skiplock::State<App>) -> Result<(), JobError> {
    let (name,): (String,) =
        sqlx::query_as("SELECT name FROM users WHERE id = $1").bind(job.user_id).fetch_one(&app.db).await?;
    println!("sending the welcome email to {name} (job {}, attempt {})", ctx.id(), ctx.attempt());
    sqlx::query("UPDATE users SET welcomed_at = now() WHERE id = $1").bind(job.user_id).execute(&app.db).await?;
    Ok(())
}

/// Every minute: forget signups that never got their email within a day.
async fn cleanup(_job: Cleanup, _ctx: JobContext, skiplock::State(app): skiplock::State<App>) -> Result<(), JobError> {
    sqlx::query("DELETE FROM users WHERE welcomed_at IS NULL AND created_at < now() - interval '1 day'")
        .execute(&app.db)
        .await?;
    Ok(())
}

/// The HTTP side of a failure: skiplock's and sqlx's errors say 500, with
/// the error in the log (never in the response, which may reach anyone).
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

    // Two pools: the app's sqlx pool, and skiplock's own (tokio-postgres),
    // kept small here since this process enqueues little and serves two
    // queues (docs/OPERATIONS.md, "Connections").
    let options: sqlx::postgres::PgConnectOptions = url.parse()?;
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(10)
        .connect_with(options.application_name("signup-app"))
        .await?;
    let jobs = Client::builder(&url).pool_size(8).application_name("signup-jobs").build()?;
    jobs.migrate().await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS users (id bigserial PRIMARY KEY, name text NOT NULL,
             created_at timestamptz NOT NULL DEFAULT now(), welcomed_at timestamptz)",
    )
    .execute(&db)
    .await?;
    let app_db = db.clone();
    let app = App { db, jobs: jobs.clone() };

    // The worker: both queues its jobs go to; `build` refuses a kind or a
    // periodic job whose queue it does not serve.
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
    if self_test {
        let stop = stop.clone();
        tokio::spawn(async move {
            let answer = post_form(addr, "/signup", "name=ada").await.expect("the signup request");
            println!("{}", answer.lines().last().unwrap_or_default());
            // The welcome email's job finishing is the end of the test.
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
            stop.cancel();
        });
    } else {
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
    }
    // Shutdown order: the server stops taking requests and finishes those in
    // flight (they may still enqueue); then the worker lets its running jobs
    // finish and gives back the rest.
    axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned()).await?;
    if self_test {
        // What the two pools hold open now, by application_name: the app's
        // sqlx pool and skiplock's (its pool, the heartbeat's, LISTEN's).
        let open: Vec<(String, i64)> = sqlx::query_as(
            "SELECT application_name, count(*) FROM pg_stat_activity
             WHERE datname = current_database() AND application_name LIKE 'signup-%' GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(&app_db)
        .await?;
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
