//! How an attempt ends and what is kept of it: panics, timeouts, snoozes, error texts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use skiplock::{EnqueueOptions, JobError, JobState};

use super::*;
use crate::support::{fresh, wait_finished};

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
