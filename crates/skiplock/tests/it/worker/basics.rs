//! A worker runs what it is given: every job once, unknown kinds kept and reported, a catch-all
//! handler, bad settings refused, completed jobs deleted when asked.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use skiplock::{EnqueueOptions, Event, JobContext, JobError, JobState, NewJob};

use super::*;
use crate::support::{fresh, wait_finished, wait_for};

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

#[tokio::test]
async fn an_unknown_kind_is_kept_and_reported() {
    let t = fresh().await;
    let worker = builder(&t).queue("default", 1).register::<Noop, _, _>(|_job, _ctx| async { Ok(()) }).build().unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue_job(NewJob::new("mystery", &(), EnqueueOptions::new()).unwrap()).await.unwrap().id;
    let handle = worker.start();
    let ev = wait_for(&mut events, |e| matches!(e, Event::Finished { .. })).await;
    handle.shutdown().await;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert!(row.errors[0].error.starts_with("no handler for kind \"mystery\""), "{:?}", row.errors);
    assert_eq!(ev, Event::Finished { id, state: JobState::Retryable, error: Some(row.errors[0].error.clone()) });
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
    let e = builder(&t).queue_with("q", skiplock::QueueConfig::new(1).prefetch(usize::MAX)).build().err().unwrap();
    assert_eq!(e.to_string(), "invalid prefetch: queue \"q\" may hold at most 100000 jobs ahead");
    for wait in [Duration::ZERO, Duration::from_secs(3601)] {
        let e = builder(&t).queue_with("q", skiplock::QueueConfig::new(1).prefetch_wait(wait)).build().err().unwrap();
        assert_eq!(e.to_string(), "invalid prefetch_wait: queue \"q\" needs between 1ms and 3600s");
    }
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

#[derive(Serialize, Deserialize)]
struct Mail;
impl Job for Mail {
    const KIND: &'static str = "mail";
    const QUEUE: &'static str = "mail";
}

#[tokio::test]
async fn what_no_worker_here_would_run_is_refused_at_build_unless_allowed() {
    use skiplock::PeriodicJob;
    let t = fresh().await;
    let refused = |b: skiplock::WorkerBuilder| match b.build() {
        Err(skiplock::Error::InvalidInput { field, reason }) => (field, reason),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("built"),
    };
    let mail = || builder(&t).queue("default", 1).register::<Mail, _, _>(|_j, _c| async { Ok(()) });

    // A typed kind whose queue is not served.
    let (field, reason) = refused(mail());
    assert_eq!(field, "queue");
    assert!(reason.contains("kind \"mail\"") && reason.contains(".queue(\"mail\", n)"), "{reason}");
    assert!(reason.contains(".allow_unserved(true)"), "{reason}");
    mail().allow_unserved(true).build().expect("allowed: another worker serves mail");
    mail().queue("mail", 1).build().expect("served");

    // A periodic job aimed at a queue not served, or at a kind with no handler.
    let tick =
        |queue: &str| PeriodicJob::cron("tick", "* * * * *").job(&Noop { n: 0 }, EnqueueOptions::new().queue(queue));
    let noop = || builder(&t).queue("default", 1).register::<Noop, _, _>(|_j, _c| async { Ok(()) });
    let (field, reason) = refused(noop().periodic(tick("elsewhere")));
    assert_eq!(field, "periodic");
    assert!(reason.contains("periodic job \"tick\"") && reason.contains("\"elsewhere\""), "{reason}");
    noop().periodic(tick("default")).build().expect("served, with a handler");

    let (field, reason) = refused(mail().queue("mail", 1).periodic(tick("default")));
    assert_eq!(field, "periodic");
    assert!(reason.contains("kind \"noop\"") && reason.contains("no handler"), "{reason}");
    // A catch-all handler runs every kind.
    builder(&t)
        .queue("default", 1)
        .register_any(None, |_a, _c| async { Ok(()) })
        .periodic(tick("default"))
        .build()
        .expect("the catch-all runs it");
}
