//! Periodic jobs: a job every two seconds (cron with seconds) and one on a
//! fixed interval, enqueued by the elected leader, once per run.
//!
//! `cargo run -p skiplock --example cron` starts a private PostgreSQL for the
//! run (set DATABASE_URL to use yours), and stops after three ticks.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiplock::{Client, EnqueueOptions, Event, Job, JobContext, JobError, PeriodicJob, Worker};

#[derive(Serialize, Deserialize)]
struct Tick {
    source: String,
}

impl Job for Tick {
    const KIND: &'static str = "tick";
}

async fn tick(job: Tick, ctx: JobContext) -> Result<(), JobError> {
    println!("tick from {} scheduled at {}", job.source, ctx.meta()["scheduled_at"]);
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_cluster, url) = skiplock_testdb::url_or_private(Default::default())?;
    let client = Client::connect(&url)?;
    client.migrate().await?;

    let worker = Worker::builder(client.clone())
        .queue("default", 4)
        .register(tick)
        // Seconds first: every two seconds, UTC.
        .periodic(
            PeriodicJob::cron("every-2s", "*/2 * * * * *").job(&Tick { source: "cron".into() }, EnqueueOptions::new()),
        )
        // Daily at 09:00 in Tokyo (it will not fire during this example).
        .periodic(
            PeriodicJob::cron("morning", "0 9 * * *")
                .timezone("Asia/Tokyo")
                .job(&Tick { source: "morning".into() }, EnqueueOptions::new()),
        )
        .periodic(
            PeriodicJob::every("every-3s", Duration::from_secs(3))
                .job(&Tick { source: "interval".into() }, EnqueueOptions::new()),
        )
        .build()?;
    let mut events = worker.subscribe();
    let handle = worker.start();
    let mut ticks = 0;
    while ticks < 3 {
        match events.recv().await? {
            Event::LeaderElected => println!("elected: this process enqueues the periodic jobs"),
            Event::PeriodicEnqueued { name, run_at, .. } => {
                println!("enqueued {name} for {run_at}");
                ticks += 1;
            }
            _ => {}
        }
    }
    for p in client.periodic_jobs().await? {
        println!("{}: {} (next run {})", p.name, p.schedule, p.next_run_at);
    }
    handle.shutdown().await;
    Ok(())
}
