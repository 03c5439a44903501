//! Hello, skiplock: enqueue one typed job and run it with a worker.
//!
//! `cargo run -p skiplock --example hello` starts a private PostgreSQL for
//! the run (set DATABASE_URL to use yours), and stops once the job is done.

use serde::{Deserialize, Serialize};
use skiplock::{Client, EnqueueOptions, Event, Job, JobContext, JobError, Worker};

#[derive(Serialize, Deserialize)]
struct SendWelcome {
    user_id: i64,
}

impl Job for SendWelcome {
    const KIND: &'static str = "send_welcome";
    const QUEUE: &'static str = "mail";
}

async fn send_welcome(job: SendWelcome, ctx: JobContext) -> Result<(), JobError> {
    println!("welcome, user {} (job {}, attempt {})", job.user_id, ctx.id(), ctx.attempt());
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (_cluster, url) = skiplock_testdb::url_or_private(Default::default())?;
    let client = Client::connect(&url)?;
    client.migrate().await?;
    let job = client.enqueue(&SendWelcome { user_id: 42 }, EnqueueOptions::new()).await?;

    let worker = Worker::builder(client).queue("mail", 20).register(send_welcome).build()?;
    let mut events = worker.subscribe();
    let handle = worker.start();
    while !matches!(events.recv().await?, Event::Finished { id, .. } if id == job.id) {}
    handle.shutdown().await;
    Ok(())
}
