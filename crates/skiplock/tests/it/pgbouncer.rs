//! Through PgBouncer in transaction pooling mode (Debian's pgbouncer, which
//! keeps no prepared statements): enqueue, and a worker's claims,
//! heartbeats, completions and maintenance, with LISTEN on a direct
//! connection. `skiplock_testdb::PgBouncer` runs one in front of the test
//! database's server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiplock::{Client, EnqueueOptions, Listen, NewJob, StatementMode, Worker};
use skiplock_testdb::PgBouncer;

use crate::support::fresh;

const JOBS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20000_job_drain_through_pgbouncer_in_transaction_mode_completes_every_job_once() {
    let t = fresh().await;
    let bouncer = PgBouncer::start(t.db.url()).expect("pgbouncer (apt-get install pgbouncer; .ci/run does)");
    let client =
        Client::builder(bouncer.url(t.db.url())).statement_mode(StatementMode::Unnamed).pool_size(10).build().unwrap();

    // Enqueue through pgbouncer: one big bulk call (several statements in one
    // transaction), and single jobs (one statement each).
    let jobs: Vec<NewJob> = (0..JOBS - 100)
        .map(|i| NewJob::new("drain", &serde_json::json!({ "i": i }), EnqueueOptions::new()).unwrap())
        .collect();
    assert_eq!(client.enqueue_many(jobs).await.unwrap().len(), JOBS - 100);
    for i in JOBS - 100..JOBS {
        let job =
            NewJob::new("drain", &serde_json::json!({ "i": i }), EnqueueOptions::new().unique_key(format!("u{i}")));
        assert!(client.enqueue_job(job.unwrap()).await.unwrap().inserted);
    }
    assert_eq!(t.count("jobs", "state = 'available'").await, JOBS as i64);

    let runs: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
    let all_ran = Arc::new(tokio::sync::Notify::new());
    let (r, done) = (runs.clone(), all_ran.clone());
    let worker = Worker::builder(client.clone())
        .queue("default", 50)
        // Heartbeats every 700ms, so they too go through pgbouncer.
        .lease(Duration::from_secs(2))
        // LISTEN needs a session: a direct connection, past pgbouncer.
        .listen(Listen::Url(t.db.url().to_owned()))
        .register_raw("drain", None, move |_args, ctx| {
            let mut runs = r.lock().unwrap();
            *runs.entry(ctx.id()).or_default() += 1;
            if runs.len() == JOBS {
                done.notify_one();
            }
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let worker_id = worker.id().to_owned();
    let handle = worker.start();
    tokio::time::timeout(Duration::from_secs(300), all_ran.notified())
        .await
        .unwrap_or_else(|_| panic!("the drain stalled; pgbouncer log:\n{}", bouncer.log()));
    // Maintenance went through pgbouncer too: this worker was elected.
    assert_eq!(client.leader().await.unwrap().map(|l| l.id), Some(worker_id));
    handle.shutdown().await;

    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
    assert_eq!(t.count("jobs", "true").await, 0);
    assert_eq!(t.count("jobs_archive", "state = 'completed' AND attempt = 1").await, JOBS as i64);
    assert_eq!(t.count("jobs_archive", "true").await, JOBS as i64);
}
