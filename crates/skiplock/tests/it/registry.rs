//! The workers registry: a worker id names at most one live process, so
//! two processes never share a leadership nor each other's jobs.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiplock::{EnqueueOptions, Event, Job, JobState, Worker};

use crate::support::{TestDb, fresh, wait_completed, wait_for};

#[derive(Serialize, Deserialize)]
struct Ping;
impl Job for Ping {
    const KIND: &'static str = "ping";
}

fn worker(t: &TestDb, id: &str) -> Worker {
    Worker::builder(t.client.clone())
        .worker_id(id)
        .queue("default", 2)
        .lease(Duration::from_secs(2))
        .leader_lease(Duration::from_secs(1))
        .register::<Ping, _, _>(|_job, _ctx| async { Ok(()) })
        .build()
        .unwrap()
}

/// A second process started with a worker id a live one holds claims
/// nothing and never leads, and says so; once the first stops (and gives
/// the id up), the second takes it and works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_id_in_use_is_not_shared_until_its_holder_stops() {
    let t = fresh().await;
    let first = worker(&t, "web-0");
    let mut first_events = first.subscribe();
    let first = first.start();
    wait_for(&mut first_events, |e| matches!(e, Event::LeaderElected)).await;

    let second = worker(&t, "web-0");
    let mut second_events = second.subscribe();
    let second = second.start();
    let ev = wait_for(&mut second_events, |e| {
        matches!(e, Event::WorkerIdInUse { .. } | Event::Registered | Event::LeaderElected)
    })
    .await;
    assert!(
        matches!(&ev, Event::WorkerIdInUse { pid, .. } if *pid == std::process::id() as i32),
        "the second process waits: {ev:?}"
    );
    // Jobs go to the first only.
    let id = t.client.enqueue(&Ping, EnqueueOptions::new()).await.unwrap().id;
    wait_completed(&mut first_events, &[id]).await;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Completed);
    let holders: Vec<(String, i64)> = t
        .sql()
        .await
        .query("SELECT id, instance FROM skiplock.workers", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(holders.len(), 1, "{holders:?}");

    // The first stops and deregisters: the second takes the id at once,
    // is elected, and works.
    first.shutdown().await;
    assert_eq!(t.count("workers", "true").await, 0, "deregistered at shutdown");
    wait_for(&mut second_events, |e| matches!(e, Event::Registered)).await;
    wait_for(&mut second_events, |e| matches!(e, Event::LeaderElected)).await;
    let id = t.client.enqueue(&Ping, EnqueueOptions::new()).await.unwrap().id;
    wait_completed(&mut second_events, &[id]).await;
    second.shutdown().await;
}

/// A running worker's entry says what it runs, and stays alive with its
/// heartbeats while it idles.
#[tokio::test]
async fn the_registry_shows_each_live_worker_and_its_queues() {
    let t = fresh().await;
    let w = worker(&t, "reporter");
    let mut events = w.subscribe();
    let handle = w.start();
    wait_for(&mut events, |e| matches!(e, Event::Registered)).await;
    let pg = t.sql().await;
    let first: chrono::DateTime<chrono::Utc> =
        pg.query_one("SELECT expires_at FROM skiplock.workers", &[]).await.unwrap().get(0);
    // Idle, yet kept alive: the expiry moves on. (A bounded poll: an idle
    // heartbeat sends no event.)
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now: chrono::DateTime<chrono::Utc> =
            pg.query_one("SELECT expires_at FROM skiplock.workers", &[]).await.unwrap().get(0);
        if now > first {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the idle worker's entry was not kept alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let row = pg.query_one("SELECT id, pid, queues FROM skiplock.workers", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "reporter");
    assert_eq!(row.get::<_, i32>(1), std::process::id() as i32);
    assert_eq!(row.get::<_, serde_json::Value>(2), serde_json::json!({ "default": 2 }));
    handle.shutdown().await;
}

/// A job leased to a live worker that never heard of it (its claim's
/// answer was lost) and whose lease ran out before the worker could give it
/// back is rescued without using up an attempt: with one attempt, it runs
/// instead of being discarded unrun. (The lost claim is made here in SQL:
/// the job marked running under the worker's id, never heartbeated.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_its_live_holder_never_knew_keeps_its_attempt_when_rescued() {
    let t = fresh().await;
    let lease = Duration::from_secs(1);
    let w = Worker::builder(t.client.clone())
        .worker_id("holder")
        .queue("default", 2)
        .lease(lease)
        .rescue_interval(Duration::from_millis(50))
        .register::<Ping, _, _>(|_job, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = w.subscribe();
    let handle = w.start();
    wait_for(&mut events, |e| matches!(e, Event::LeaderElected)).await;
    let pg = t.sql().await;
    let id: i64 = pg
        .query_one(
            "INSERT INTO skiplock.jobs (kind, args, state, attempt, max_attempts, attempted_at, lease_token,
                                        lease_expires_at, leased_by)
             VALUES ('ping', 'null', 'running', 1, 1, now(), nextval('skiplock.lease_token_seq'),
                     now() + interval '1 second', 'holder')
             RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    wait_completed(&mut events, &[id]).await;
    handle.shutdown().await;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempt, row.errors.len()), (JobState::Completed, 1, 0), "{:?}", row.errors);
}
