//! Leases: heartbeats keep a long job leased and carry its progress; a lost lease stops the handler.

use std::sync::Arc;
use std::time::Duration;

use skiplock::{CancelReason, EnqueueOptions, Event, JobState, Worker};

use super::*;
use crate::support::{fresh, wait_finished, wait_for};

#[tokio::test]
async fn a_lost_lease_stops_the_handler() {
    let t = fresh().await;
    let worker = Worker::builder(t.client.clone())
        .queue("default", 2)
        .lease(Duration::from_secs(2))
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

#[tokio::test]
async fn heartbeats_keep_a_long_job_leased_and_carry_its_progress() {
    let t = fresh().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let worker = Worker::builder(t.client.clone())
        .queue("default", 1)
        .lease(Duration::from_millis(1500))
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
