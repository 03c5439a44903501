//! Leader election: one process runs the maintenance passes; a deposed
//! leader's passes are refused by the database even while it still believes
//! it leads; a leader that stops or dies is replaced.

use std::time::{Duration, Instant};

use skiplock::{Event, Maintenance, Worker};

use crate::support::fresh;
use crate::support::wait_for;

fn maintenance(t: &crate::support::TestDb, id: &str, lease: Duration) -> Maintenance {
    Maintenance::builder(t.client.clone()).id(id).leader_lease(lease).build().unwrap()
}

async fn force_expiry(t: &crate::support::TestDb) {
    t.sql().await.execute("UPDATE skiplock.leader SET expires_at = now() - interval '1 second'", &[]).await.unwrap();
}

#[tokio::test]
async fn two_leaders_never_run_maintenance_at_once() {
    let t = fresh().await;
    let a = maintenance(&t, "a", Duration::from_secs(60));
    let b = maintenance(&t, "b", Duration::from_secs(60));
    let mut a_events = a.subscribe();

    assert!(a.run_once().await.unwrap().is_none(), "not elected yet");
    assert!(a.elect().await.unwrap());
    assert!(!b.elect().await.unwrap(), "a holds an unexpired lease");
    assert!(a.run_once().await.unwrap().is_some());
    assert!(b.run_once().await.unwrap().is_none());
    assert_eq!(t.client.leader().await.unwrap().unwrap().id, "a");

    // a's lease runs out (forced), b takes over; a has not noticed.
    force_expiry(&t).await;
    assert!(b.elect().await.unwrap());
    assert!(a.is_leader(), "a's own clock says its lease still holds");
    assert!(a.run_once().await.unwrap().is_none(), "the database refuses the deposed leader's pass");
    assert!(!a.is_leader(), "the refusal ends a's leadership locally");
    wait_for(&mut a_events, |e| matches!(e, Event::LeaderLost)).await;
    assert!(b.run_once().await.unwrap().is_some());
    assert!(!a.elect().await.unwrap(), "b holds it now");

    // Resigning hands over at once.
    assert!(b.resign().await.unwrap());
    assert!(t.client.leader().await.unwrap().is_none());
    assert!(a.elect().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_leaders_passes_never_overlap() {
    let t = fresh().await;
    let lease = Duration::from_secs(30);
    let mut tasks = Vec::new();
    for id in ["a", "b", "c"] {
        let m = maintenance(&t, id, lease);
        tasks.push(tokio::spawn(async move {
            let mut passes = Vec::new();
            for _ in 0..60 {
                if m.elect().await.unwrap()
                    && let Some(r) = m.run_once().await.unwrap()
                {
                    passes.push((r.started_at, r.finished_at, m.id().to_owned()));
                }
            }
            passes
        }));
    }
    // Meanwhile, depose whoever leads, again and again: its row becomes a
    // dead leader's, expired, which anyone may take over, while the deposed
    // process still believes it leads until its next election round. (Only
    // expiring the row is not enough: a holder that is alive renews its row
    // whether or not it expired.)
    let pg = t.sql().await;
    let mut forced = 0;
    while !tasks.iter().all(|t| t.is_finished()) && forced < 200 {
        pg.execute("UPDATE skiplock.leader SET leader_id = 'dead', expires_at = now() - interval '1 second'", &[])
            .await
            .unwrap();
        forced += 1;
        tokio::task::yield_now().await;
    }
    let mut passes = Vec::new();
    for task in tasks {
        passes.extend(task.await.unwrap());
    }
    passes.sort();
    let leaders: std::collections::HashSet<&str> = passes.iter().map(|p| p.2.as_str()).collect();
    assert!(leaders.len() >= 2, "leadership changed hands: {leaders:?} over {} passes", passes.len());
    for w in passes.windows(2) {
        let ((_, end0, id0), (start1, _, id1)) = (&w[0], &w[1]);
        assert!(end0 < start1, "{id0}'s pass ending {end0} overlaps {id1}'s starting {start1}");
    }
}

#[tokio::test]
async fn a_stopped_leader_hands_over_and_a_dead_one_is_replaced_after_its_lease() {
    let t = fresh().await;
    let lease = Duration::from_millis(900);
    // A "dead" leader: elected once, never renews.
    let dead = maintenance(&t, "dead", lease);
    assert!(dead.elect().await.unwrap());
    let elected_at = Instant::now();

    let worker = |id: &str| {
        Worker::builder(t.client.clone())
            .worker_id(id)
            .queue("default", 1)
            .leader_lease(lease)
            .register_any(None, |_args, _ctx| async { Ok(()) })
            .build()
            .unwrap()
    };
    let w1 = worker("w1");
    let mut e1 = w1.subscribe();
    let h1 = w1.start();
    wait_for(&mut e1, |e| matches!(e, Event::LeaderElected)).await;
    let took = elected_at.elapsed();
    assert!(took >= lease / 2, "the dead leader's lease was honoured ({took:?})");
    assert!(took < lease * 3, "replaced within a third of a lease after it ran out ({took:?})");
    assert_eq!(t.client.leader().await.unwrap().unwrap().id, "w1");

    let w2 = worker("w2");
    let mut e2 = w2.subscribe();
    let h2 = w2.start();
    // w1 stops: it resigns, and w2 takes over at its next round.
    h1.shutdown().await;
    wait_for(&mut e1, |e| matches!(e, Event::LeaderLost)).await;
    wait_for(&mut e2, |e| matches!(e, Event::LeaderElected)).await;
    assert_eq!(t.client.leader().await.unwrap().unwrap().id, "w2");
    h2.shutdown().await;
    assert!(t.client.leader().await.unwrap().is_none(), "resigned at shutdown");
}

/// One lock wait must not stop the fleet's maintenance. An application
/// transaction holds a periodic job's unique key (it enqueued the same key
/// and has not committed): the periodic pass waits for it, bounded by its
/// lock timeout, and fails; rescue and promotion, in passes of their own,
/// go on, the leader keeps its lease, and no backend is left waiting on a
/// lock for each abandoned election.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_wait_in_one_pass_never_stops_the_other_passes_nor_leaks_backends() {
    let t = fresh().await;
    let mut app = t.sql().await;
    let open = app.transaction().await.unwrap();
    open.execute("SELECT skiplock.enqueue('tick', '{}', unique_key => 'p')", &[]).await.unwrap();
    let lease = Duration::from_millis(900);
    let worker = Worker::builder(t.client.clone())
        .queue("default", 1)
        .leader_lease(lease)
        .scheduler_interval(Duration::from_millis(50))
        .periodic(
            skiplock::PeriodicJob::every("p", Duration::from_secs(1))
                .new_job(skiplock::NewJob::new("tick", &(), skiplock::EnqueueOptions::new().unique_key("p")).unwrap()),
        )
        .register_any(None, |_args, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    wait_for(&mut events, |e| matches!(e, Event::LeaderElected)).await;
    // A job due in four leader leases is promoted and run while the
    // periodic pass is stuck behind the application's transaction, run
    // after run (its first run falls due a second after registering).
    let delayed = t
        .client
        .enqueue_job(skiplock::NewJob::new("later", &(), skiplock::EnqueueOptions::new().delay(lease * 4)).unwrap())
        .await
        .unwrap()
        .id;
    let done = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match wait_for(&mut events, |e| matches!(e, Event::Finished { .. } | Event::LeaderLost)).await {
                Event::Finished { id, .. } if id == delayed => break Ok(()),
                Event::LeaderLost => break Err("the leader lost its lease"),
                _ => {}
            }
        }
    })
    .await;
    let waiting: i64 = t
        .sql()
        .await
        .query_one(
            // Not counted: a worker's advance of the queue's low-water marks,
            // which the open transaction's enqueue also holds back, waits
            // for the marks' advisory lock 10 ms at a time, a few times a
            // second (runtime/marks.rs); it is never left waiting.
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'
               AND wait_event <> 'advisory'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    open.rollback().await.unwrap();
    handle.shutdown().await;
    assert_eq!(done, Ok(Ok(())), "the scheduled job was promoted and run");
    assert!(waiting <= 1, "{waiting} backends wait on a lock");
}
