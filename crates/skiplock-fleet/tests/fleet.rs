//! Several real worker processes on one database: they share the work and
//! run each job exactly once, and a killed worker's job is rescued and
//! finished by another. Processes are synchronised on their `ready` line and
//! on the database's state (bounded polls), never on sleeps.

mod common;

use std::time::{Duration, Instant};

use common::{fleet, fresh, poll};
use skiplock::{Client, EnqueueOptions, NewJob};

/// `n` jobs of kind `kind` on `queue`, args `{"i": i}`, enqueued in chunks.
async fn enqueue(client: &Client, queue: &str, kind: &str, n: usize) {
    const CHUNK: usize = 10_000;
    for start in (0..n).step_by(CHUNK) {
        let jobs = (start..n.min(start + CHUNK))
            .map(|i| NewJob::from_json(kind, &format!(r#"{{"i":{i}}}"#), EnqueueOptions::new().queue(queue)).unwrap())
            .collect();
        client.enqueue_many(jobs).await.expect("enqueue");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_drain_100k_jobs_exactly_once() {
    const JOBS: i64 = 100_000;
    const WORKERS: [&str; 3] = ["fleet-a", "fleet-b", "fleet-c"];
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let sql = db.connect().await.unwrap();
    let t = Instant::now();
    enqueue(&client, "fleet", "fleet.noop", JOBS as usize).await;
    println!("enqueued {JOBS} jobs in {:.1}s", t.elapsed().as_secs_f64());

    let mut fleet = fleet(&db);
    let started = Instant::now();
    for id in WORKERS {
        let args = ["--queue", "fleet", "--concurrency", "50", "--handler", "noop", "--worker-id", id];
        fleet.start(&args).await.unwrap();
    }
    let sql = &sql;
    poll("the hot table to empty", Duration::from_millis(100), Duration::from_secs(600), move || async move {
        let n: i64 = sql.query_one("SELECT count(*) FROM skiplock.jobs", &[]).await.unwrap().get(0);
        (n == 0).then_some(())
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    println!("3 processes x 50 slots drained {JOBS} jobs in {elapsed:.1}s: {:.0} jobs/s", JOBS as f64 / elapsed);
    fleet.stop_all().await.unwrap();

    let row = sql
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE state = 'completed' AND attempt = 1), count(DISTINCT id),
                    array_agg(DISTINCT leased_by ORDER BY leased_by)
             FROM skiplock.jobs_archive",
            &[],
        )
        .await
        .unwrap();
    let (total, completed_once, distinct): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (total, completed_once, distinct),
        (JOBS, JOBS, JOBS),
        "(archived, completed at attempt 1, distinct ids)"
    );
    let leased_by: Vec<Option<String>> = row.get(3);
    assert_eq!(leased_by, WORKERS.map(|w| Some(w.to_owned())), "every worker took a share");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_job_is_rescued_and_finished_by_another() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let sql = db.connect().await.unwrap();
    skiplock_fleet::audit::setup(&sql, &sql).await.unwrap();
    let mut fleet = fleet(&db);
    // A runs no maintenance, so that B is the one to rescue the job (were A
    // the maintenance leader, B would first have to wait out its leadership).
    let a = fleet
        .start(&[
            "--queue",
            "rescue",
            "--handler",
            "block",
            "--lease-ms",
            "1000",
            "--no-maintenance",
            "--worker-id",
            "fleet-a",
        ])
        .await
        .unwrap();
    let job = NewJob::from_json("fleet.block", "{}", EnqueueOptions::new().queue("rescue")).unwrap();
    let id = client.enqueue_job(job).await.unwrap().id;

    let sql = &sql;
    poll("worker A to start the job", Duration::from_millis(20), Duration::from_secs(30), move || async move {
        let n: i64 =
            sql.query_one("SELECT count(*) FROM public.fleet_log WHERE job_id = $1", &[&id]).await.unwrap().get(0);
        (n > 0).then_some(())
    })
    .await;
    fleet.kill(a).await.unwrap();

    let b = fleet
        .start(&["--queue", "rescue", "--handler", "log", "--rescue-ms", "200", "--worker-id", "fleet-b"])
        .await
        .unwrap();
    let client = &client;
    let row =
        poll("worker B to finish the rescued job", Duration::from_millis(50), Duration::from_secs(30), || async {
            client.job(id).await.unwrap().filter(|r| r.state.is_final())
        })
        .await;
    fleet.stop_all().await.unwrap();

    assert_eq!(row.state, skiplock::JobState::Completed);
    assert_eq!((row.attempt, row.leased_by.as_deref()), (2, Some("fleet-b")));
    assert_eq!(row.errors.len(), 1, "{:?}", row.errors);
    assert_eq!(row.errors[0].attempt, 1);
    let error = &row.errors[0].error;
    assert!(error.contains("lease expired") && error.contains("fleet-a"), "{error}");

    let runs: Vec<(i32, u32, bool)> = sql
        .query(
            "SELECT attempt, pid, finished_at IS NOT NULL FROM public.fleet_log WHERE job_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get::<_, i32>(1) as u32, r.get(2)))
        .collect();
    // A's run never ended (it was killed); B's did, as attempt 2.
    assert_eq!(runs, vec![(1, fleet.pid(a), false), (2, fleet.pid(b), true)]);
}
