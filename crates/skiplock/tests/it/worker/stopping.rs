//! Stopping handlers: an operator's cancel, and shutdown with its grace.

use std::time::Duration;

use skiplock::{CancelReason, EnqueueOptions, Event, JobState, Worker};

use super::*;
use crate::support::{fresh, wait_finished, wait_for};

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
