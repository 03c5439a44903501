//! The runtime's own bookkeeping of running jobs: every attempt is
//! supervised (heartbeats, deadline, cancels) from its claim until its
//! outcome is written, and nothing done for one attempt reaches another.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiplock::{Backoff, EnqueueOptions, Event, Job, JobError, JobState, Worker};

use crate::support::{fresh, wait_finished, wait_for};

#[derive(Serialize, Deserialize)]
struct Blocks;
impl Job for Blocks {
    const KIND: &'static str = "blocks";
}

/// Attempt 1 blocks its thread (a handler doing synchronous work), so the
/// runtime cannot drop it, and meanwhile its lease is lost (here taken over
/// and expired in SQL, as a cut-off heartbeat would let it expire) and the
/// job rescued: the same worker claims it again. When attempt 1 finally
/// returns, neither it nor the late "lost" answer for its lease may touch
/// attempt 2: attempt 2 keeps its heartbeats and completes, and no attempt 3
/// ever starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_late_old_attempt_never_touches_the_new_attempts_supervision() {
    let t = fresh().await;
    let lease = Duration::from_secs(1);
    let worker = Worker::builder(t.client.clone())
        .queue("default", 2)
        .lease(lease)
        .rescue_interval(Duration::from_millis(50))
        .poll_interval(Duration::from_millis(50), Duration::from_millis(50))
        .register::<Blocks, _, _>(move |_job, ctx| async move {
            if ctx.attempt() == 1 {
                // Not a yield point: the runtime cannot stop this one. (In
                // block_in_place, so the runtime's other tasks move to
                // another thread, as they do after a busy handler.)
                tokio::task::block_in_place(|| std::thread::sleep(lease * 5 / 2));
            } else {
                tokio::time::sleep(lease * 4).await;
            }
            Ok(())
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Blocks, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    let mut started = Vec::new();
    let done = loop {
        match wait_for(&mut events, |e| matches!(e, Event::Started { .. } | Event::Finished { .. })).await {
            Event::Started { attempt, .. } => {
                started.push(attempt);
                if started.len() > 2 {
                    break None;
                }
                if attempt == 1 {
                    t.sql()
                        .await
                        .execute(
                            "UPDATE skiplock.jobs SET lease_token = lease_token + 1000000,
                                 lease_expires_at = now() - interval '1 second'",
                            &[],
                        )
                        .await
                        .unwrap();
                    // Rescued now, by this call or the worker's own rescuer.
                    t.client.rescue(10).await.unwrap();
                }
            }
            Event::Finished { state, .. } if state.is_final() => break Some(state),
            _ => {}
        }
    };
    handle.shutdown().await;
    assert_eq!(started, vec![1, 2], "attempt 2 ran alone to its end");
    assert_eq!(done, Some(JobState::Completed));
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.attempt, 2);
    assert_eq!(row.errors.len(), 1, "{:?}", row.errors);
    assert!(row.errors[0].error.starts_with("lease expired"), "{:?}", row.errors);
}

#[derive(Serialize, Deserialize)]
struct Fails;
impl Job for Fails {
    const KIND: &'static str = "fails";
    const MAX_ATTEMPTS: i32 = 2;
}

/// A retry policy that panics (user code, outside the handler) must not
/// leave the job running forever under a lease its worker keeps renewing:
/// the attempt fails with a fallback wait and the job goes on.
#[tokio::test]
async fn a_panicking_backoff_fails_the_attempt_instead_of_leaving_it_running() {
    let t = fresh().await;
    let worker = Worker::builder(t.client.clone())
        .queue("default", 1)
        .lease(Duration::from_secs(2))
        .backoff(Backoff::Custom(Arc::new(|_| panic!("no wait for you"))))
        .register::<Fails, _, _>(|_job, _ctx| async { Err(JobError::retry("nope")) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Fails, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    let ev = wait_for(&mut events, |e| matches!(e, Event::Finished { .. })).await;
    handle.shutdown().await;
    assert_eq!(ev, Event::Finished { id, state: JobState::Retryable, error: Some("nope".into()) });
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Retryable);
    assert!(row.run_at > chrono::Utc::now(), "retried after a fallback wait, not at once");
    assert_eq!(row.errors.len(), 1);
    assert_eq!(row.errors[0].error, "nope");
}

#[derive(Serialize, Deserialize)]
struct Holds {
    bad_progress: bool,
}
impl Job for Holds {
    const KIND: &'static str = "holds";
}

/// Progress the database cannot store (a NUL in a JSON string) is refused
/// where it is set, naming the field; it never reaches the heartbeat that
/// every running job of the worker shares.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_the_database_refuses_never_stops_other_jobs_heartbeats() {
    let t = fresh().await;
    let (release, _) = tokio::sync::broadcast::channel::<()>(1);
    let (refused_tx, mut refused_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let r = release.clone();
    let worker = Worker::builder(t.client.clone())
        .queue("default", 2)
        .lease(Duration::from_secs(1))
        .rescue_interval(Duration::from_millis(100))
        .register::<Holds, _, _>(move |job, ctx| {
            let mut go = r.subscribe();
            let refused = refused_tx.clone();
            async move {
                if job.bad_progress {
                    match ctx.set_progress(&"a\u{0}b") {
                        Err(e) => refused.send(e.to_string()).unwrap(),
                        Ok(()) => refused.send("accepted".into()).unwrap(),
                    }
                } else {
                    ctx.set_progress(&serde_json::json!({ "ok": true })).unwrap();
                }
                let _ = go.recv().await;
                Ok(())
            }
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let good = t.client.enqueue(&Holds { bad_progress: false }, EnqueueOptions::new()).await.unwrap().id;
    let bad = t.client.enqueue(&Holds { bad_progress: true }, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    let refused = tokio::time::timeout(Duration::from_secs(30), refused_rx.recv()).await.unwrap().unwrap();
    assert!(refused.starts_with("invalid progress:"), "{refused}");
    // Three lease lengths of heartbeats, every one extending both leases.
    for _ in 0..9 {
        let ev = wait_for(&mut events, |e| matches!(e, Event::Heartbeat { .. } | Event::CancelRequested { .. })).await;
        assert_eq!(ev, Event::Heartbeat { extended: 2, lost: 0 });
    }
    release.send(()).unwrap();
    let mut done = wait_finished(&mut events, 2).await;
    done.sort();
    handle.shutdown().await;
    assert_eq!(done, vec![(good, JobState::Completed), (bad, JobState::Completed)]);
    let row = t.client.job(good).await.unwrap().unwrap();
    assert_eq!(row.meta["progress"], serde_json::json!({ "ok": true }));
}

#[derive(Serialize, Deserialize)]
struct Quick;
impl Job for Quick {
    const KIND: &'static str = "quick";
}

/// An outcome the database keeps refusing for a while (here a constraint
/// on the archive refuses completed jobs, as a misconfigured or full archive
/// would) keeps its job's lease alive while it is retried: the job is not
/// rescued and run again, and the outcome is written once the database
/// takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_waiting_for_the_database_keeps_its_lease() {
    let t = fresh().await;
    let maintenance = skiplock::Maintenance::builder(t.client.clone()).id("setup").build().unwrap();
    assert!(maintenance.elect().await.unwrap());
    maintenance.archive_once(None).await.unwrap().expect("leader");
    maintenance.resign().await.unwrap();
    let pg = t.sql().await;
    let leaf: String = pg
        .query_one(
            "SELECT 'skiplock.jobs_archive_p' || to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD') || '_completed'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    pg.batch_execute(&format!("ALTER TABLE {leaf} ADD CONSTRAINT refuse CHECK (false) NOT VALID")).await.unwrap();
    let worker = Worker::builder(t.client.clone())
        .queue("default", 2)
        .lease(Duration::from_secs(1))
        .rescue_interval(Duration::from_millis(100))
        .register::<Quick, _, _>(|_job, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Quick, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::FlushFailed { .. })).await;
    // Three lease lengths pass while the outcome is refused, its lease
    // extended all along.
    for _ in 0..9 {
        let ev = wait_for(&mut events, |e| {
            matches!(e, Event::Heartbeat { .. } | Event::Started { attempt: 2.., .. } | Event::Stale { .. })
        })
        .await;
        assert_eq!(ev, Event::Heartbeat { extended: 1, lost: 0 });
    }
    pg.batch_execute(&format!("ALTER TABLE {leaf} DROP CONSTRAINT refuse")).await.unwrap();
    assert_eq!(wait_finished(&mut events, 1).await, vec![(id, JobState::Completed)]);
    handle.shutdown().await;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!((row.attempt, row.errors.len()), (1, 0), "never rescued: {:?}", row.errors);
}

/// Review S5: an outcome the database refuses for what it holds (a data
/// exception, here raised by a trigger for one job's error text) does not
/// wedge its worker. The batch it came in is written one outcome at a time,
/// so the other jobs' outcomes land; the refused one is given up (its lease
/// runs out and the job is taken back later), and the worker goes on
/// claiming and finishing new jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_the_database_refuses_for_its_content_does_not_wedge_the_worker() {
    let t = fresh().await;
    let pg = t.sql().await;
    pg.batch_execute(
        "CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.errors::text LIKE '%poison%' THEN
                 RAISE EXCEPTION 'refused: poison' USING ERRCODE = '22023';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON skiplock.jobs_archive
             FOR EACH ROW EXECUTE FUNCTION public.refuse_poison();",
    )
    .await
    .unwrap();
    let worker = Worker::builder(t.client.clone())
        .queue("default", 10)
        .register_raw("k", None, |args, _ctx| async move {
            if args.get().contains("poison") { Err(JobError::discard("poison pill")) } else { Ok(()) }
        })
        .register::<Quick, _, _>(|_job, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let mut jobs: Vec<skiplock::NewJob> =
        (0..9).map(|i| skiplock::NewJob::new("k", &i, EnqueueOptions::new()).unwrap()).collect();
    jobs.push(skiplock::NewJob::new("k", &"poison", EnqueueOptions::new()).unwrap());
    let ids: Vec<i64> = t.client.enqueue_many(jobs).await.unwrap().into_iter().map(|e| e.id).collect();
    let poison = ids[9];
    let handle = worker.start();
    let mut done = wait_finished(&mut events, 9).await;
    done.sort_unstable();
    let expected: Vec<(i64, JobState)> = ids[..9].iter().map(|id| (*id, JobState::Completed)).collect();
    assert_eq!(done, expected, "every other outcome was written");
    // New work still flows through this worker.
    let later = t.client.enqueue(&Quick, EnqueueOptions::new()).await.unwrap().id;
    assert!(later > poison);
    let late = wait_for(&mut events, |e| matches!(e, Event::Finished { .. })).await;
    assert_eq!(late, Event::Finished { id: later, state: JobState::Completed, error: None });
    handle.shutdown().await;
    let row = t.client.job(poison).await.unwrap().unwrap();
    assert!(!row.state.is_final(), "the refused outcome was not written: {:?}", row.state);
}
