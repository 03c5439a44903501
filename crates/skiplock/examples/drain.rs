//! Drains no-op jobs with the worker runtime and prints jobs/s.
//!
//! `cargo run --release -p skiplock --example drain -- [jobs] [concurrency]`
//! On a private cluster (fsync off, as the tests' clusters) unless
//! DATABASE_URL is set. `NO_MAINT=1` turns the worker's maintenance off;
//! `ENQUEUE_ONLY=1` stops after the enqueue; `SHARED_POOL=1` runs the client
//! on a plain `deadpool-postgres` pool of 16 (`ClientBuilder::pool`: no
//! session settings) instead of its own.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use skiplock::{Client, EnqueueOptions, Event, Job, NewJob, Worker};

#[derive(Serialize, Deserialize)]
struct Noop {
    i: u32,
}
impl Job for Noop {
    const KIND: &'static str = "noop";
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let jobs: u32 = args.next().map_or(100_000, |a| a.parse().unwrap());
    let concurrency: usize = args.next().map_or(100, |a| a.parse().unwrap());
    let (_cluster, url) = skiplock_testdb::url_or_private(Default::default())?;
    let client = if std::env::var("SHARED_POOL").is_ok() {
        use skiplock::deadpool_postgres::{Manager, Pool};
        let pool = Pool::builder(Manager::new(url.parse()?, skiplock::tokio_postgres::NoTls)).max_size(16).build()?;
        Client::builder(&url).pool(pool).build()?
    } else {
        Client::connect(&url)?
    };
    client.migrate().await?;

    let batch: Vec<NewJob> = (0..jobs).map(|i| NewJob::typed(&Noop { i }, EnqueueOptions::new()).unwrap()).collect();
    let t = Instant::now();
    client.enqueue_many(batch).await?;
    let e = t.elapsed();
    println!("enqueue_many: {jobs} jobs in {e:?} = {:.0} jobs/s", jobs as f64 / e.as_secs_f64());
    if std::env::var("ENQUEUE_ONLY").is_ok() {
        return Ok(());
    }

    let worker = Worker::builder(client.clone())
        .queue("default", concurrency)
        .maintenance(std::env::var("NO_MAINT").is_err())
        .register(|_job: Noop, _ctx| async { Ok(()) })
        .build()?;
    let mut events = worker.subscribe();
    let t = Instant::now();
    let handle = worker.start();
    let mut done = 0u32;
    while done < jobs {
        match tokio::time::timeout(Duration::from_secs(60), events.recv()).await? {
            Ok(Event::Finished { .. }) => done += 1,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => panic!("lagged {n}"),
            Err(e) => return Err(e.into()),
        }
    }
    let e = t.elapsed();
    println!("drain c={concurrency}: {jobs} jobs in {e:?} = {:.0} jobs/s", jobs as f64 / e.as_secs_f64());
    handle.shutdown().await;
    Ok(())
}
