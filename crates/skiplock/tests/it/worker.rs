//! The worker runtime in one process: handlers, outcomes, timeouts, panics,
//! wake-ups, cancellation, shutdown. Tests wait on events, never on sleeps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiplock::{
    CancelReason, EnqueueOptions, Event, Job, JobContext, JobError, JobState, NewJob, WakeSource, Worker, WorkerBuilder,
};

use crate::support::{TestDb, fresh, wait_finished, wait_for};

#[derive(Serialize, Deserialize)]
struct Noop {
    n: u32,
}
impl Job for Noop {
    const KIND: &'static str = "noop";
}

fn builder(t: &TestDb) -> WorkerBuilder {
    Worker::builder(t.client.clone()).lease(Duration::from_secs(5)).shutdown_grace(Duration::from_secs(5))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_every_job_once() {
    let t = fresh().await;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let worker = builder(&t)
        .queue("default", 20)
        .register::<Noop, _, _>(move |_job, _ctx| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let jobs: Vec<NewJob> = (0..2000).map(|n| NewJob::typed(&Noop { n }, EnqueueOptions::new()).unwrap()).collect();
    t.client.enqueue_many(jobs).await.unwrap();
    let handle = worker.start();
    let done = wait_finished(&mut events, 2000).await;
    handle.shutdown().await;
    assert!(done.iter().all(|(_, s)| *s == JobState::Completed));
    assert_eq!(runs.load(Ordering::Relaxed), 2000);
    assert_eq!(t.count("jobs", "true").await, 0);
    assert_eq!(t.count("jobs_archive", "state = 'completed' AND attempt = 1").await, 2000);
}

#[derive(Serialize, Deserialize)]
struct Panics;
impl Job for Panics {
    const KIND: &'static str = "panics";
    const MAX_ATTEMPTS: i32 = 2;
}

#[tokio::test]
async fn a_panicking_job_is_retried_then_discarded_with_the_message_kept() {
    let t = fresh().await;
    let worker = builder(&t)
        .queue("default", 2)
        .backoff(skiplock::Backoff::Constant(Duration::ZERO))
        .register::<Panics, _, _>(|_job, ctx| async move { panic!("boom on attempt {}", ctx.attempt()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Panics, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    assert_eq!(wait_finished(&mut events, 1).await, vec![(id, JobState::Discarded)]);
    handle.shutdown().await;
    let row = t.client.job(id).await.unwrap().unwrap();
    let errors: Vec<_> = row.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(errors, vec!["panicked: boom on attempt 1", "panicked: boom on attempt 2"]);
}

#[derive(Serialize, Deserialize)]
struct Sleepy {
    ms: u64,
}
impl Job for Sleepy {
    const KIND: &'static str = "sleepy";
    const MAX_ATTEMPTS: i32 = 1;
    const TIMEOUT: Option<Duration> = Some(Duration::from_millis(200));
}

async fn sleepy(job: Sleepy, _ctx: JobContext) -> Result<(), JobError> {
    tokio::time::sleep(Duration::from_millis(job.ms)).await;
    Ok(())
}

#[tokio::test]
async fn a_timeout_drops_the_handler_and_fails_the_attempt() {
    let t = fresh().await;
    let worker = builder(&t).queue("default", 2).register::<Sleepy, _, _>(sleepy).build().unwrap();
    let mut events = worker.subscribe();
    let slow = t.client.enqueue(&Sleepy { ms: 3_600_000 }, EnqueueOptions::new()).await.unwrap().id;
    // A per-job timeout overrides the kind's.
    let patient =
        t.client.enqueue(&Sleepy { ms: 400 }, EnqueueOptions::new().timeout(Duration::from_secs(20))).await.unwrap().id;
    let handle = worker.start();
    let mut done = wait_finished(&mut events, 2).await;
    done.sort();
    handle.shutdown().await;
    assert_eq!(done, vec![(slow, JobState::Discarded), (patient, JobState::Completed)]);
    let row = t.client.job(slow).await.unwrap().unwrap();
    assert_eq!(row.errors[0].error, "timed out after 200ms");
}

#[derive(Serialize, Deserialize)]
struct Snoozer;
impl Job for Snoozer {
    const KIND: &'static str = "snoozer";
    const MAX_ATTEMPTS: i32 = 1;
}

#[tokio::test]
async fn snoozing_does_not_use_an_attempt() {
    let t = fresh().await;
    let worker = builder(&t)
        .queue("default", 2)
        .scheduler_interval(Duration::from_millis(50))
        .register::<Snoozer, _, _>(|_job, ctx| async move {
            // Snooze twice, then succeed: every run is attempt 1, since a
            // snooze gives its attempt back.
            assert_eq!(ctx.attempt(), 1);
            if SNOOZES.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(JobError::snooze(Duration::from_millis(10)));
            }
            Ok(())
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Snoozer, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    assert_eq!(wait_finished(&mut events, 1).await, vec![(id, JobState::Completed)]);
    handle.shutdown().await;
    assert_eq!(SNOOZES.load(Ordering::SeqCst), 3);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!((row.attempt, row.max_attempts), (1, 1));
}
static SNOOZES: AtomicUsize = AtomicUsize::new(0);

#[derive(Serialize, Deserialize)]
struct Waits;
impl Job for Waits {
    const KIND: &'static str = "waits";
}

/// A handler that runs until it is cancelled, and says why it stopped.
async fn waits(_job: Waits, ctx: JobContext) -> Result<(), JobError> {
    ctx.cancelled().await;
    Err(JobError::retry(format!("stopped: {:?}", ctx.cancel_reason())))
}

#[tokio::test]
async fn an_operator_cancel_reaches_the_running_handler() {
    let t = fresh().await;
    let worker = builder(&t).queue("default", 2).register::<Waits, _, _>(waits).build().unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Waits, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::Started { id: i, .. } if *i == id)).await;
    assert_eq!(t.client.cancel(&[id]).await.unwrap(), vec![(id, skiplock::CancelResult::Cancelling)]);
    let ev = wait_for(&mut events, |e| matches!(e, Event::CancelRequested { .. })).await;
    assert_eq!(ev, Event::CancelRequested { id, reason: CancelReason::Cancelled });
    assert_eq!(wait_finished(&mut events, 1).await, vec![(id, JobState::Cancelled)]);
    handle.shutdown().await;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.errors.last().unwrap().error, "stopped: Some(Cancelled)");
}

#[tokio::test]
async fn a_notify_wakes_an_idle_worker_long_before_its_poll() {
    let t = fresh().await;
    let worker = builder(&t)
        .queue("default", 2)
        .poll_interval(Duration::from_secs(3600), Duration::from_secs(3600))
        .register::<Noop, _, _>(|_job, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::ListenerConnected)).await;
    let id = t.client.enqueue(&Noop { n: 1 }, EnqueueOptions::new()).await.unwrap().id;
    let woken = wait_for(&mut events, |e| matches!(e, Event::Woken { .. })).await;
    assert_eq!(woken, Event::Woken { queue: "default".into(), source: WakeSource::Notify });
    assert_eq!(wait_finished(&mut events, 1).await, vec![(id, JobState::Completed)]);
    handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_jobs_finish_within_the_grace_and_releases_the_rest() {
    let t = fresh().await;
    let worker = Worker::builder(t.client.clone())
        .queue("default", 4)
        .shutdown_grace(Duration::from_millis(300))
        .cancel_grace(Duration::from_millis(100))
        .register::<Sleepy, _, _>(sleepy)
        .register::<Waits, _, _>(|_job, ctx| async move {
            // Ignores cancellation: it is dropped after the cancel grace.
            let _ = ctx;
            std::future::pending::<()>().await;
            Ok(())
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let quick =
        t.client.enqueue(&Sleepy { ms: 50 }, EnqueueOptions::new().timeout(Duration::from_secs(60))).await.unwrap().id;
    let stuck = t.client.enqueue(&Waits, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    for _ in 0..2 {
        wait_for(&mut events, |e| matches!(e, Event::Started { .. })).await;
    }
    handle.shutdown().await;
    let quick_row = t.client.job(quick).await.unwrap().unwrap();
    assert_eq!(quick_row.state, JobState::Completed, "finished within the grace; its outcome was flushed");
    let stuck_row = t.client.job(stuck).await.unwrap().unwrap();
    assert_eq!((stuck_row.state, stuck_row.attempt), (JobState::Available, 0), "released without using an attempt");
    assert!(stuck_row.lease_token.is_none());
}

#[tokio::test]
async fn a_lost_lease_stops_the_handler() {
    let t = fresh().await;
    let worker = Worker::builder(t.client.clone())
        .queue("default", 2)
        .lease(Duration::from_millis(600))
        .maintenance(false)
        .register::<Waits, _, _>(waits)
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Waits, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::Started { .. })).await;
    // Another party took the job over (as the rescuer and a new claim would).
    t.sql().await.execute("UPDATE skiplock.jobs SET lease_token = lease_token + 1000000", &[]).await.unwrap();
    let ev = wait_for(&mut events, |e| matches!(e, Event::CancelRequested { .. })).await;
    assert_eq!(ev, Event::CancelRequested { id, reason: CancelReason::LeaseLost });
    // Its outcome is refused as stale: the new holder's attempt stands.
    wait_for(&mut events, |e| matches!(e, Event::Stale { id: i } if *i == id)).await;
    handle.shutdown().await;
    assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Running);
}

#[derive(Serialize, Deserialize)]
struct Long;
impl Job for Long {
    const KIND: &'static str = "long";
}

#[tokio::test]
async fn heartbeats_keep_a_long_job_leased_and_carry_its_progress() {
    let t = fresh().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let worker = Worker::builder(t.client.clone())
        .queue("default", 1)
        .lease(Duration::from_millis(300))
        .rescue_interval(Duration::from_millis(50))
        .register::<Long, _, _>(move |_job, ctx| {
            let rx = rx.clone();
            async move {
                ctx.set_progress(&serde_json::json!({ "step": 7 })).unwrap();
                let rx = rx.lock().await.take().unwrap();
                let _ = rx.await; // until the test says so
                Ok(())
            }
        })
        .build()
        .unwrap();
    let id = t.client.enqueue(&Long, EnqueueOptions::new()).await.unwrap().id;
    let mut events = worker.subscribe();
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::Started { .. })).await;
    // Five heartbeats: several lease lengths pass with the rescuer running
    // every 50ms, and the job stays ours. The progress came with them.
    for _ in 0..5 {
        let ev = wait_for(&mut events, |e| matches!(e, Event::Heartbeat { .. })).await;
        assert_eq!(ev, Event::Heartbeat { extended: 1, lost: 0 });
    }
    let progress: Option<String> = t
        .sql()
        .await
        .query_one("SELECT meta->'progress'->>'step' FROM skiplock.jobs WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(progress.as_deref(), Some("7"));
    tx.send(()).unwrap();
    assert_eq!(wait_finished(&mut events, 1).await, vec![(id, JobState::Completed)]);
    handle.shutdown().await;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert!(row.errors.is_empty(), "never rescued: {:?}", row.errors);
}

#[tokio::test]
async fn an_unknown_kind_is_kept_and_reported() {
    let t = fresh().await;
    let worker = builder(&t).queue("default", 1).register::<Noop, _, _>(|_job, _ctx| async { Ok(()) }).build().unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue_job(NewJob::new("mystery", &(), EnqueueOptions::new()).unwrap()).await.unwrap().id;
    let handle = worker.start();
    let ev = wait_for(&mut events, |e| matches!(e, Event::Finished { .. })).await;
    handle.shutdown().await;
    assert_eq!(ev, Event::Finished { id, state: JobState::Retryable });
    let row = t.client.job(id).await.unwrap().unwrap();
    assert!(row.errors[0].error.starts_with("no handler for kind \"mystery\""), "{:?}", row.errors);
}

#[tokio::test]
async fn bad_worker_settings_are_rejected() {
    let t = fresh().await;
    let e = builder(&t)
        .queue("default", 1)
        .register::<Noop, _, _>(|_j, _c| async { Ok(()) })
        .register::<Noop, _, _>(|_j, _c| async { Ok(()) })
        .build()
        .err()
        .unwrap();
    assert_eq!(e.to_string(), "invalid kind: \"noop\" is registered twice");
    let e = builder(&t).build().err().unwrap();
    assert!(e.to_string().starts_with("invalid queue:"), "{e}");
    let e = builder(&t).queue("q", 0).build().err().unwrap();
    assert!(e.to_string().starts_with("invalid concurrency:"), "{e}");
    let e = builder(&t).queue("bad name", 1).build().err().unwrap();
    assert!(e.to_string().starts_with("invalid queue:"), "{e}");
    let e = builder(&t).queue("q", 1).register_raw("\"; drop table", None, |_a, _c| async { Ok(()) }).build();
    assert!(e.err().unwrap().to_string().starts_with("invalid kind:"));
    let any = || |_a: Box<serde_json::value::RawValue>, _c: JobContext| async { Ok(()) };
    let e = builder(&t).queue("q", 1).register_any(None, any()).register_any(None, any()).build().err().unwrap();
    assert_eq!(e.to_string(), "invalid kind: a catch-all handler is registered twice");
    let e = builder(&t).queue("q", 1).queue("q", 2).build().err().unwrap();
    assert!(e.to_string().starts_with("invalid queue: \"q\" is configured twice"), "{e}");
    let e = builder(&t).queue("q", 1).lease(Duration::from_millis(10)).build().err().unwrap();
    assert_eq!(e.to_string(), "invalid lease: must be at least 100ms");
}

#[tokio::test]
async fn handler_errors_are_stored_without_credentials() {
    let t = fresh().await;
    let worker = builder(&t)
        .queue("default", 1)
        .register::<Noop, _, _>(|_job, _ctx| async {
            Err(JobError::discard("cannot reach postgres://app:hunter2@db.internal:5432/app"))
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Noop { n: 0 }, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    wait_finished(&mut events, 1).await;
    handle.shutdown().await;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.errors[0].error, "cannot reach postgres://app:***@db.internal:5432/app");
}

#[tokio::test]
async fn a_catch_all_handler_runs_kinds_without_their_own() {
    let t = fresh().await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let worker = builder(&t)
        .queue("default", 2)
        .register::<Noop, _, _>(|_job, _ctx| async { Ok(()) })
        .register_any(None, move |args, ctx| {
            s.lock().unwrap().push((ctx.kind().to_owned(), args.get().to_owned()));
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    t.client.enqueue_job(NewJob::from_json("mystery", r#"{"x":1}"#, EnqueueOptions::new()).unwrap()).await.unwrap();
    t.client.enqueue(&Noop { n: 1 }, EnqueueOptions::new()).await.unwrap();
    let handle = worker.start();
    wait_finished(&mut events, 2).await;
    handle.shutdown().await;
    // jsonb keeps its own spacing.
    assert_eq!(*seen.lock().unwrap(), vec![("mystery".to_owned(), r#"{"x": 1}"#.to_owned())]);
}

#[tokio::test]
async fn completed_jobs_can_be_deleted_instead_of_archived() {
    let t = fresh().await;
    let worker = builder(&t)
        .queue("default", 4)
        .keep_completed(false)
        .register::<Noop, _, _>(|job, _ctx| async move {
            if job.n == 0 { Err(JobError::discard("kept for the operator")) } else { Ok(()) }
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let jobs: Vec<NewJob> = (0..10).map(|n| NewJob::typed(&Noop { n }, EnqueueOptions::new()).unwrap()).collect();
    t.client.enqueue_many(jobs).await.unwrap();
    let handle = worker.start();
    wait_finished(&mut events, 10).await;
    handle.shutdown().await;
    assert_eq!(t.count("jobs", "true").await, 0);
    assert_eq!(t.count("jobs_archive", "true").await, 1, "only the discarded job is archived");
    assert_eq!(t.count("jobs_archive", "state = 'discarded'").await, 1);
}

#[tokio::test]
async fn a_lost_listen_connection_comes_back_and_polls_once() {
    let t = fresh().await;
    let worker = builder(&t)
        .queue("default", 2)
        .poll_interval(Duration::from_secs(3600), Duration::from_secs(3600))
        .register::<Noop, _, _>(|_job, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::ListenerConnected)).await;
    // Cut the LISTEN connection: notifications sent meanwhile are lost...
    let pg = t.sql().await;
    pg.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        &[],
    )
    .await
    .unwrap();
    wait_for(&mut events, |e| matches!(e, Event::ListenerLost { .. })).await;
    // ...so the producers look once at once, the listener reconnects, and
    // wake-ups work again.
    let woken = wait_for(&mut events, |e| matches!(e, Event::Woken { .. })).await;
    assert_eq!(woken, Event::Woken { queue: "default".into(), source: WakeSource::Reconnect });
    wait_for(&mut events, |e| matches!(e, Event::ListenerConnected)).await;
    let id = t.client.enqueue(&Noop { n: 3 }, EnqueueOptions::new()).await.unwrap().id;
    assert_eq!(wait_finished(&mut events, 1).await, vec![(id, JobState::Completed)]);
    handle.shutdown().await;
}
