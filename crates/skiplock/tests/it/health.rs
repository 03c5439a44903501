//! `Client::health`: each figure read from the server as it is, and a
//! finding in words when one needs action. On a private cluster: the oldest
//! xmin is the whole cluster's, and other tests' sessions would be in it.

use std::time::Duration;

use skiplock::health::Level;
use skiplock::{Client, Health, HealthLimits, Maintenance};
use skiplock_testdb::{Cluster, ClusterOptions};

async fn private_cluster() -> Cluster {
    tokio::task::spawn_blocking(|| Cluster::start(ClusterOptions::default())).await.unwrap().expect("a cluster")
}

fn finding<'a>(h: &'a Health, check: &str) -> Option<&'a skiplock::health::Finding> {
    h.findings.iter().find(|f| f.check == check)
}

/// Reads health until `pred` holds (statistics reach the views a moment
/// after the transaction that made them), at most 30 s.
async fn health_until(client: &Client, limits: &HealthLimits, what: &str, pred: impl Fn(&Health) -> bool) -> Health {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let h = client.health_with(limits).await.unwrap();
        if pred(&h) {
            return h;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within 30s; last: {h:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_held_snapshot_is_named_with_what_to_do_and_the_dead_rows_it_keeps_are_blamed_on_it() {
    let cluster = private_cluster().await;
    let url = cluster.url("postgres");
    let client = Client::connect(&url).unwrap();
    client.migrate().await.unwrap();
    let limits = HealthLimits::new().xmin_age(Duration::ZERO).dead_tuples(100);

    // No worker: nobody leads, and nothing holds the horizon.
    let h = client.health_with(&limits).await.unwrap();
    assert!(h.leader.is_none());
    assert!(finding(&h, "leader").is_some_and(|f| f.level == Level::Warn), "{h:#?}");
    assert!(h.needs_action());
    assert!(finding(&h, "oldest_xmin").is_none(), "{h:#?}");

    // A session holds a snapshot, as a forgotten REPEATABLE READ
    // transaction (or a long report) does.
    let holder = skiplock::connect_raw(&url).await.unwrap();
    holder
        .batch_execute("SET application_name = 'nightly-report'; BEGIN ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    holder.query_one("SELECT count(*) FROM skiplock.jobs", &[]).await.unwrap();
    let pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);

    // Jobs finished meanwhile leave dead rows vacuum cannot remove.
    let pg = skiplock::connect_raw(&url).await.unwrap();
    pg.batch_execute(
        "INSERT INTO skiplock.jobs (queue, kind, args) SELECT 'default', 'k', '{}' FROM generate_series(1, 500);
         DELETE FROM skiplock.jobs",
    )
    .await
    .unwrap();
    pg.batch_execute("VACUUM skiplock.jobs").await.unwrap();
    let h = health_until(&client, &limits, "the dead rows counted", |h| h.hot_table.dead_tuples >= 500).await;
    let x = h.oldest_xmin.as_ref().expect("a holder");
    assert_eq!((x.kind.as_str(), x.who.as_str()), ("session", pid.to_string().as_str()));
    assert_eq!(x.application.as_deref(), Some("nightly-report"));
    let f = finding(&h, "oldest_xmin").expect("a finding about the holder");
    assert_eq!(f.level, Level::Warn);
    assert!(f.message.contains(&format!("session {pid}")) && f.message.contains("nightly-report"), "{}", f.message);
    assert!(f.message.contains("idle in transaction"), "{}", f.message);
    assert!(f.advice.contains(&format!("pg_terminate_backend({pid})")), "{}", f.advice);
    let dead = finding(&h, "hot_table").expect("a finding about the dead rows");
    assert!(dead.advice.contains("holds the xmin back"), "{}", dead.advice);

    // Once it ends, the finding goes, and a vacuum clears the dead rows.
    holder.batch_execute("COMMIT").await.unwrap();
    pg.batch_execute("VACUUM skiplock.jobs").await.unwrap();
    let h = health_until(&client, &limits, "the holder gone and the rows vacuumed", |h| {
        finding(h, "oldest_xmin").is_none() && h.hot_table.dead_tuples == 0
    })
    .await;
    assert!(finding(&h, "hot_table").is_none(), "{h:#?}");
    assert!(h.hot_table.last_vacuum.is_some());
}

#[tokio::test]
async fn a_leader_its_archive_days_and_stuck_jobs_are_reported() {
    let cluster = private_cluster().await;
    let url = cluster.url("postgres");
    let client = Client::connect(&url).unwrap();
    client.migrate().await.unwrap();
    let limits = HealthLimits::new().stuck_grace(Duration::from_secs(60));

    let m = Maintenance::builder(client.clone()).id("health-leader").build().unwrap();
    assert!(m.elect().await.unwrap());
    m.archive_once(None).await.unwrap();
    let h = client.health_with(&limits).await.unwrap();
    assert_eq!(h.leader.as_ref().map(|l| l.id.as_str()), Some("health-leader"));
    assert!(h.archive_partitions.has_today && h.archive_partitions.days_ahead >= 2, "{h:#?}");
    assert!(finding(&h, "leader").is_none() && finding(&h, "archive_partitions").is_none(), "{h:#?}");

    // A running job two minutes past its lease that nobody rescued.
    let pg = skiplock::connect_raw(&url).await.unwrap();
    pg.batch_execute(
        "INSERT INTO skiplock.jobs (queue, kind, args, state, attempt, attempted_at, lease_expires_at, leased_by, lease_token)
         VALUES ('default', 'k', '{}', 'running', 1, now() - interval '3 minutes', now() - interval '2 minutes', 'gone', 1)",
    )
    .await
    .unwrap();
    let h = client.health_with(&limits).await.unwrap();
    assert_eq!(h.rescued_last_hour, 0);
    assert_eq!(h.stuck_running.count, 1);
    assert!(h.stuck_running.oldest_secs.unwrap() >= 119.0);
    let f = finding(&h, "stuck_running").expect("a finding");
    assert!(f.message.starts_with("1 running jobs are past their lease"), "{}", f.message);
    assert!(h.needs_action());
}

/// Discards of the last hour come from the workers' per-minute statistics
/// (written at the latest when the worker stops): a note, not an action.
#[tokio::test]
async fn the_last_hour_s_discards_are_counted_and_noted() {
    let t = crate::support::fresh().await;
    let worker = skiplock::Worker::builder(t.client.clone())
        .queue("default", 1)
        .maintenance(false)
        .register_raw("k", None, |_args, _ctx| async { Err(skiplock::JobError::discard("bad input")) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    t.seed("default", "k", 2).await;
    let handle = worker.start();
    let done = crate::support::wait_finished(&mut events, 2).await;
    assert!(done.iter().all(|(_, s)| *s == skiplock::JobState::Discarded), "{done:?}");
    handle.shutdown().await;
    let h = t.client.health().await.unwrap();
    assert_eq!(h.discarded_last_hour, 2);
    let f = finding(&h, "discards").expect("a note");
    assert_eq!(f.level, Level::Note);
    assert!(f.message.starts_with("2 jobs were discarded in the last hour"), "{}", f.message);
    assert_eq!(h.findings.last().map(|f| f.check), Some("discards"), "notes come after warnings");
}

/// Rescues of the last hour are counted in the rescue's own transaction.
#[tokio::test]
async fn the_last_hour_s_rescues_are_counted_and_noted() {
    let t = crate::support::fresh().await;
    t.seed("default", "k", 3).await;
    let held = t.client.claim("default", 3, Duration::from_secs(60), "gone").await.unwrap();
    assert_eq!(held.len(), 3);
    let pg = t.sql().await;
    pg.batch_execute("UPDATE skiplock.jobs SET lease_expires_at = now() - interval '1 second'").await.unwrap();
    assert_eq!(t.client.rescue(100).await.unwrap().rescued.len(), 3);
    let h = t.client.health().await.unwrap();
    assert_eq!(h.rescued_last_hour, 3);
    let f = finding(&h, "rescues").expect("a note");
    assert_eq!(f.level, Level::Note);
    assert!(f.message.starts_with("3 jobs were taken back in the last hour"), "{}", f.message);
    // A rescue that finds nothing counts nothing.
    assert!(t.client.rescue(100).await.unwrap().rescued.is_empty());
    assert_eq!(t.client.health().await.unwrap().rescued_last_hour, 3);
}

/// A queue with jobs waiting and no live worker serving it is named, from
/// the workers registry; a served queue, a paused one and one whose jobs
/// are all scheduled for later are not.
#[tokio::test]
async fn a_queue_with_jobs_waiting_and_no_worker_is_named() {
    use skiplock::{EnqueueOptions, Event, NewJob};
    let t = crate::support::fresh().await;
    t.seed("mail", "k", 3).await;
    t.seed("default", "k", 2).await;
    t.seed("paused", "k", 1).await;
    t.client.queue_pause("paused").await.unwrap();
    let later = EnqueueOptions::new().queue("later").delay(Duration::from_secs(3600));
    t.client.enqueue_job(NewJob::new("k", &(), later).unwrap()).await.unwrap();
    let names = |h: &Health| h.unserved_queues.iter().map(|u| (u.queue.clone(), u.waiting)).collect::<Vec<_>>();

    let h = t.client.health().await.unwrap();
    assert_eq!(names(&h), [("default".to_owned(), 2), ("mail".to_owned(), 3)], "no worker at all yet");

    // A worker that serves `default` but holds its jobs (its handler waits).
    let (release, held) = tokio::sync::watch::channel(false);
    let worker = skiplock::Worker::builder(t.client.clone())
        .queue("default", 1)
        .maintenance(false)
        .register_raw("k", None, move |_args, _ctx| {
            let mut held = held.clone();
            async move {
                let _ = held.wait_for(|go| *go).await;
                Ok(())
            }
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    crate::support::wait_for(&mut events, |e| matches!(e, Event::Registered)).await;
    let h = t.client.health().await.unwrap();
    assert_eq!(names(&h), [("mail".to_owned(), 3)]);
    let f = finding(&h, "unserved_queues").expect("a finding");
    assert_eq!(f.level, Level::Warn);
    assert!(f.message.contains("queue \"mail\" has 3 jobs waiting, and no live worker serves it"), "{}", f.message);
    assert!(f.advice.contains("skiplock work --queue mail"), "{}", f.advice);
    assert!(h.needs_action());
    release.send(true).unwrap();
    handle.shutdown().await;
}
