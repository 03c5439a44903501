//! Wake-ups: a NOTIFY wakes an idle worker, a lost LISTEN connection comes back and polls once.

use std::time::Duration;

use skiplock::{EnqueueOptions, Event, JobState, WakeSource};

use super::*;
use crate::support::{fresh, wait_finished, wait_for};

/// A worker that polls once an hour, started and listening: only a wake-up
/// gets it to claim.
async fn listening_idle_worker(
    t: &crate::support::TestDb,
) -> (skiplock::WorkerHandle, tokio::sync::broadcast::Receiver<Event>) {
    let worker = builder(t)
        .queue("default", 2)
        .poll_interval(Duration::from_secs(3600), Duration::from_secs(3600))
        .register::<Noop, _, _>(|_job, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::ListenerConnected)).await;
    (handle, events)
}

#[tokio::test]
async fn a_notify_wakes_an_idle_worker_long_before_its_poll() {
    let t = fresh().await;
    let (handle, mut events) = listening_idle_worker(&t).await;
    let id = t.client.enqueue(&Noop { n: 1 }, EnqueueOptions::new()).await.unwrap().id;
    // In either order: on a slow machine the producers' first look, made as
    // the worker starts, may come after the enqueue and take the job, and
    // the wake-up then reaches them once they are idle again.
    let (mut woken, mut finished) = (None, None);
    while woken.is_none() || finished.is_none() {
        match wait_for(&mut events, |e| matches!(e, Event::Woken { .. } | Event::Finished { .. })).await {
            e @ Event::Woken { .. } => woken = woken.or(Some(e)),
            Event::Finished { id, state, .. } => finished = Some((id, state)),
            _ => unreachable!(),
        }
    }
    assert_eq!(woken, Some(Event::Woken { queue: "default".into(), source: WakeSource::Notify }));
    assert_eq!(finished, Some((id, JobState::Completed)));
    handle.shutdown().await;
}

#[tokio::test]
async fn a_lost_listen_connection_comes_back_and_polls_once() {
    let t = fresh().await;
    let (handle, mut events) = listening_idle_worker(&t).await;
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
