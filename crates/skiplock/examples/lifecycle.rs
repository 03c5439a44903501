//! The lifecycle calls by hand: claim a batch, complete it, repeat, from one
//! task; prints jobs/s for batches of 1 and 100. (The worker runtime does
//! the same with more in flight; `skiplock bench` measures that.)
//!
//! `cargo run --release -p skiplock --example lifecycle -- [jobs]` on a
//! private cluster with default durability, unless DATABASE_URL is set.

use std::time::{Duration, Instant};

use skiplock::{Client, EnqueueOptions, NewJob};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let jobs: usize = std::env::args().nth(1).map_or(20_000, |a| a.parse().expect("a number of jobs"));
    let opts = skiplock_testdb::ClusterOptions { durable: true, ..Default::default() };
    let (_cluster, url) = skiplock_testdb::url_or_private(opts)?;
    let client = Client::connect(&url)?;
    client.migrate().await?;
    for batch in [1, 100] {
        // Batches of one are slow: a tenth as many jobs.
        let n = if batch == 1 { jobs / 10 } else { jobs };
        let all: Vec<NewJob> =
            (0..n).map(|i| NewJob::new("noop", &i, EnqueueOptions::new().queue("lifecycle")).unwrap()).collect();
        client.enqueue_many(all).await?;
        let started = Instant::now();
        let mut done = 0;
        while done < n {
            let claimed = client.claim("lifecycle", batch, Duration::from_secs(30), "example").await?;
            let leases: Vec<_> = claimed.iter().map(|j| j.lease).collect();
            done += client.complete(&leases).await?.applied.len();
        }
        let took = started.elapsed();
        println!(
            "claim + complete, batches of {batch:>3}: {n} jobs in {took:.2?} = {:.0} jobs/s",
            n as f64 / took.as_secs_f64()
        );
    }
    Ok(())
}
