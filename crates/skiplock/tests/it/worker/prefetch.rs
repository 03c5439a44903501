//! The prefetch: jobs claimed ahead of free slots wait under a heartbeated
//! lease, start only in a slot, and are handed back unstarted at shutdown,
//! when cancelled, and when their lease is lost.
//!
//! Every test sets up the same scene: one slot, room for 20 ahead, five
//! quick jobs run first (so the worker knows its jobs are quick and
//! prefetches), then a handler that blocks the slot and ten quick jobs
//! claimed behind it.

use std::collections::HashMap;
use std::time::Duration;

use skiplock::{CancelReason, EnqueueOptions, Event, JobState, NewJob, QueueConfig, WorkerHandle};
use tokio::sync::broadcast::Receiver;

use super::*;
use crate::support::{TestDb, fresh, wait_completed, wait_for};

const AHEAD: usize = 10;

/// Starts the scene's worker and returns it with its events, the blocking
/// job's id and the ids of the jobs claimed behind it.
async fn scene(t: &TestDb, shutdown_grace: Duration) -> (WorkerHandle, Receiver<Event>, i64, Vec<i64>) {
    // Jobs claimed ahead wait as long as these tests need.
    scene_with(t, shutdown_grace, Duration::from_secs(600)).await
}

/// [`scene`], where a job claimed ahead waits at most `prefetch_wait`.
async fn scene_with(
    t: &TestDb,
    shutdown_grace: Duration,
    prefetch_wait: Duration,
) -> (WorkerHandle, Receiver<Event>, i64, Vec<i64>) {
    let worker = builder(t)
        .shutdown_grace(shutdown_grace)
        .queue_with("default", QueueConfig::new(1).prefetch(20).prefetch_wait(prefetch_wait))
        .register::<Noop, _, _>(|_job, _ctx| async { Ok(()) })
        .register::<Waits, _, _>(waits)
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    let warm = t.client.enqueue_many(noops(5)).await.unwrap();
    wait_completed(&mut events, &warm.iter().map(|r| r.id).collect::<Vec<_>>()).await;
    let blocker = t.client.enqueue(&Waits, EnqueueOptions::new()).await.unwrap().id;
    wait_for(&mut events, |e| matches!(e, Event::Started { id, .. } if *id == blocker)).await;
    let behind: Vec<i64> = t.client.enqueue_many(noops(AHEAD as u32)).await.unwrap().iter().map(|r| r.id).collect();
    let mut claimed = 0;
    while claimed < AHEAD {
        if let Event::Claimed { count, .. } = wait_for(&mut events, |e| matches!(e, Event::Claimed { .. })).await {
            claimed += count;
        }
    }
    assert_eq!(claimed, AHEAD, "claimed no more than there were");
    let running = t.count("jobs", "state = 'running'").await;
    assert_eq!(running, 1 + AHEAD as i64, "the blocker and every job behind it are leased to the worker");
    assert_eq!(handle.running(), 1, "only the blocker runs; the others wait for its slot");
    (handle, events, blocker, behind)
}

fn noops(n: u32) -> Vec<NewJob> {
    (0..n).map(|n| NewJob::typed(&Noop { n }, EnqueueOptions::new()).unwrap()).collect()
}

/// `Started` events per job id, from whatever is left in `events`.
fn starts(events: &mut Receiver<Event>) -> HashMap<i64, Vec<i32>> {
    let mut seen: HashMap<i64, Vec<i32>> = HashMap::new();
    while let Ok(e) = events.try_recv() {
        if let Event::Started { id, attempt, .. } = e {
            seen.entry(id).or_default().push(attempt);
        }
    }
    seen
}

#[tokio::test]
async fn jobs_claimed_ahead_wait_under_a_heartbeated_lease_and_run_once_a_slot_frees() {
    let t = fresh().await;
    let (handle, mut events, blocker, behind) = scene(&t, Duration::from_secs(5)).await;
    // A heartbeat extends the waiting jobs' leases with the running one's.
    wait_for(&mut events, |e| matches!(e, Event::Heartbeat { extended, .. } if *extended == 1 + AHEAD)).await;
    assert_eq!(handle.running(), 1);
    t.client.cancel(&[blocker]).await.unwrap();
    wait_completed(&mut events, &behind).await;
    for id in &behind {
        let row = t.client.job(*id).await.unwrap().unwrap();
        assert_eq!((row.state, row.attempt), (JobState::Completed, 1), "job {id} ran once");
    }
    handle.shutdown().await;
}

#[tokio::test]
async fn shutdown_gives_the_jobs_claimed_ahead_back_unstarted_and_claims_no_more() {
    let t = fresh().await;
    let (handle, mut events, blocker, mut behind) = scene(&t, Duration::from_millis(200)).await;
    // More jobs than the prefetch holds: the worker fills it (20 ahead of
    // its one slot), and jobs are still waiting when it stops.
    let more: Vec<i64> = t.client.enqueue_many(noops(50)).await.unwrap().iter().map(|r| r.id).collect();
    let mut claimed = 0;
    while claimed < 20 - AHEAD {
        if let Event::Claimed { count, .. } = wait_for(&mut events, |e| matches!(e, Event::Claimed { .. })).await {
            claimed += count;
        }
    }
    assert_eq!(t.count("jobs", "state = 'running'").await, 21, "the slot and a full prefetch");
    behind.extend(more);
    tokio::time::timeout(Duration::from_secs(30), handle.shutdown()).await.expect("the shutdown ends");
    let started = starts(&mut events);
    for id in &behind {
        assert!(!started.contains_key(id), "job {id} never started");
        let row = t.client.job(*id).await.unwrap().unwrap();
        assert_eq!((row.state, row.attempt), (JobState::Available, 0), "job {id} is back with its attempt unused");
        assert!(row.lease_token.is_none() && row.errors.is_empty(), "job {id}: {row:?}");
    }
    let row = t.client.job(blocker).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempt), (JobState::Available, 0), "the blocker was released at the end of the grace");
}

#[tokio::test]
async fn a_job_claimed_ahead_that_is_cancelled_or_loses_its_lease_never_starts() {
    let t = fresh().await;
    let (handle, mut events, blocker, behind) = scene(&t, Duration::from_secs(5)).await;
    let (cancelled, lost) = (behind[0], behind[1]);
    t.client.cancel(&[cancelled]).await.unwrap();
    let ev = wait_for(&mut events, |e| matches!(e, Event::Finished { id, .. } if *id == cancelled)).await;
    assert!(matches!(ev, Event::Finished { state: JobState::Cancelled, .. }), "{ev:?}");
    // Taken back behind the worker's back, as a rescuer would.
    let sql = t.sql().await;
    let n = sql
        .execute(
            "UPDATE skiplock.jobs SET state = 'available', lease_token = NULL, leased_by = NULL, \
             lease_expires_at = NULL WHERE id = $1 AND state = 'running'",
            &[&lost],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let ev = wait_for(&mut events, |e| matches!(e, Event::CancelRequested { id, .. } if *id == lost)).await;
    assert_eq!(ev, Event::CancelRequested { id: lost, reason: CancelReason::LeaseLost });
    let mut started = starts(&mut events);
    t.client.cancel(&[blocker]).await.unwrap();
    let rest: Vec<i64> = behind[1..].to_vec();
    let mut finished = 0;
    let mut left = rest.len();
    while left > 0 {
        match wait_for(&mut events, |e| matches!(e, Event::Started { .. } | Event::Finished { .. })).await {
            Event::Started { id, attempt, .. } => started.entry(id).or_default().push(attempt),
            Event::Finished { id, state, .. } if rest.contains(&id) && state.is_final() => {
                assert_eq!(state, JobState::Completed, "job {id}");
                left -= 1;
                finished += 1;
            }
            _ => {}
        }
    }
    assert_eq!(finished, rest.len());
    assert!(!started.contains_key(&cancelled), "the cancelled job never started");
    assert_eq!(
        started.get(&lost),
        Some(&vec![2]),
        "the job whose lease was lost ran once, in the attempt claimed after it"
    );
    let row = t.client.job(cancelled).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Cancelled);
    assert_eq!(row.errors.last().map(|e| e.error.as_str()), Some("cancelled before it started"));
    handle.shutdown().await;
}

#[tokio::test]
async fn jobs_claimed_ahead_of_a_slot_that_stays_busy_go_back_to_a_worker_with_room() {
    let t = fresh().await;
    // The default wait, one second: the ten quick jobs behind the blocker
    // were claimed at the quick jobs' pace, and the blocker does not end.
    let (handle, mut events, _blocker, behind) =
        scene_with(&t, Duration::from_millis(200), skiplock::PREFETCH_WAIT_DEFAULT).await;
    for id in &behind {
        wait_for(&mut events, |e| matches!(e, Event::Finished { id: i, state: JobState::Available, .. } if i == id))
            .await;
    }
    // A second worker with free slots runs them; the first, still busy,
    // claims none ahead again until one of its jobs finishes.
    let other = builder(&t).queue("default", 5).register::<Noop, _, _>(|_job, _ctx| async { Ok(()) }).build().unwrap();
    let mut other_events = other.subscribe();
    let other = other.start();
    wait_completed(&mut other_events, &behind).await;
    for id in &behind {
        let row = t.client.job(*id).await.unwrap().unwrap();
        assert_eq!(
            (row.state, row.attempt),
            (JobState::Completed, 1),
            "job {id} ran once, its handed-back attempt unused"
        );
    }
    assert_eq!(handle.running(), 1, "the blocker still runs");
    assert!(!starts(&mut events).keys().any(|id| behind.contains(id)), "the busy worker started none of them");
    other.shutdown().await;
    handle.shutdown().await;
}
