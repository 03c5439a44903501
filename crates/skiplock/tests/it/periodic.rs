//! Periodic jobs: each scheduled run is enqueued once across the fleet,
//! missed runs are skipped unless asked for, bad schedules are rejected at
//! registration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiplock::{EnqueueOptions, Event, Job, Maintenance, Missed, NewJob, PeriodicJob, Worker};

use crate::support::{TestDb, fresh};

#[derive(Serialize, Deserialize)]
struct Tick;
impl Job for Tick {
    const KIND: &'static str = "tick";
}

/// Scheduled run time (as stored in the job's meta) → jobs enqueued for it.
async fn runs(t: &TestDb, name: &str) -> BTreeMap<String, i64> {
    let sql = "SELECT meta->>'scheduled_at', count(*) FROM (
                   SELECT meta FROM skiplock.jobs UNION ALL SELECT meta FROM skiplock.jobs_archive) j
               WHERE meta->>'periodic' = $1 GROUP BY 1";
    t.sql().await.query(sql, &[&name]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

/// Three workers (three in-process `Worker`s, each with its own `Client`
/// and pool, as three processes would have) run the same every-second
/// schedule. Leadership is forced to change hands mid-way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cron_schedule_enqueues_each_run_once_with_three_workers_running() {
    let t = fresh().await;
    let ran = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    let mut events = Vec::new();
    for i in 0..3 {
        let client = skiplock::Client::connect(t.db.url()).unwrap();
        let r = ran.clone();
        let worker = Worker::builder(client)
            .worker_id(format!("w{i}"))
            .queue("default", 4)
            .leader_lease(Duration::from_millis(900))
            .periodic(PeriodicJob::cron("tick", "* * * * * *").job(&Tick, EnqueueOptions::new()))
            .register::<Tick, _, _>(move |_job, _ctx| {
                r.fetch_add(1, Ordering::Relaxed);
                async { Ok(()) }
            })
            .build()
            .unwrap();
        events.push(worker.subscribe());
        handles.push(worker.start());
    }
    // Collect every worker's events in one stream.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for mut ev in events {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(e) = ev.recv().await {
                if tx.send(e).is_err() {
                    return;
                }
            }
        });
    }
    let mut enqueued = 0;
    let mut forced = false;
    while enqueued < 6 {
        let e = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("runs keep coming").unwrap();
        if matches!(e, Event::PeriodicEnqueued { .. }) {
            enqueued += 1;
            if enqueued == 3 && !forced {
                forced = true;
                t.sql()
                    .await
                    .execute("UPDATE skiplock.leader SET expires_at = now() - interval '1 second'", &[])
                    .await
                    .unwrap();
            }
        }
    }
    for h in &handles {
        h.shutdown().await;
    }
    let by_run = runs(&t, "tick").await;
    assert!(by_run.len() >= 6, "{by_run:?}");
    assert!(by_run.values().all(|&n| n == 1), "a run enqueued twice: {by_run:?}");
    // Consecutive seconds: nothing skipped across the change of leader.
    let times: Vec<chrono::DateTime<chrono::Utc>> = by_run.keys().map(|k| k.parse().unwrap()).collect();
    for w in times.windows(2) {
        assert_eq!(w[1] - w[0], chrono::TimeDelta::seconds(1), "{times:?}");
    }
    let rows = t.client.periodic_jobs().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].schedule, "cron * * * * * * UTC");
}

/// Two processes that both believe they lead (same id, so both pass the
/// leader guard) race over ten due runs: the compare-and-set on
/// `next_run_at` lets each run through once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_believed_leaders_enqueue_each_run_once() {
    let t = fresh().await;
    let build = || {
        Maintenance::builder(skiplock::Client::connect(t.db.url()).unwrap())
            .id("twin")
            .periodic(
                PeriodicJob::every("every10s", Duration::from_secs(10))
                    .new_job(NewJob::new("tick", &(), EnqueueOptions::new()).unwrap()),
            )
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    assert!(a.elect().await.unwrap() && b.elect().await.unwrap());
    assert!(a.periodic_once().await.unwrap().unwrap().enqueued.is_empty(), "registered; first run in 10s");
    t.sql()
        .await
        .execute("UPDATE skiplock.periodic SET next_run_at = now() - interval '55 seconds'", &[])
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for m in [a, b] {
        tasks.push(tokio::spawn(async move {
            let mut n = 0;
            for _ in 0..10 {
                n += m.periodic_once().await.unwrap().unwrap().enqueued.len();
            }
            n
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    let by_run = runs(&t, "every10s").await;
    assert_eq!(by_run.len(), 6, "runs at -55s, -45s, … -5s: {by_run:?}");
    assert!(by_run.values().all(|&n| n == 1), "{by_run:?}");
    assert_eq!(total, 6);
}

#[tokio::test]
async fn missed_runs_are_skipped_unless_back_fill_is_asked_for() {
    let t = fresh().await;
    for (name, missed, expect) in [("skipper", Missed::Skip, 0), ("filler", Missed::RunAll, 6)] {
        let m = Maintenance::builder(t.client.clone())
            .id(name)
            .periodic(
                PeriodicJob::every(name, Duration::from_secs(600))
                    .missed(missed)
                    .new_job(NewJob::new("tick", &(), EnqueueOptions::new()).unwrap()),
            )
            .build()
            .unwrap();
        assert!(m.elect().await.unwrap());
        m.periodic_once().await.unwrap().unwrap();
        // Nothing ran for an hour: six runs were missed, the last 5m05s ago.
        t.sql()
            .await
            .execute(
                "UPDATE skiplock.periodic SET next_run_at = now() - interval '3595 seconds' WHERE name = $1",
                &[&name],
            )
            .await
            .unwrap();
        let r = m.periodic_once().await.unwrap().unwrap();
        assert_eq!(r.enqueued.len(), expect, "{name}");
        let row = t.client.periodic_jobs().await.unwrap().into_iter().find(|p| p.name == name).unwrap();
        assert!(row.next_run_at > chrono::Utc::now(), "{name}: the next run is in the future");
        m.resign().await.unwrap();
    }
}

#[tokio::test]
async fn bad_schedules_are_rejected_at_registration_naming_the_field() {
    let t = fresh().await;
    let tick = || NewJob::new("tick", &(), EnqueueOptions::new()).unwrap();
    let cases = [
        (PeriodicJob::cron("p", "*/5 * * *").new_job(tick()), "invalid cron:"),
        (PeriodicJob::cron("p", "0 0 30 2 *").new_job(tick()), "never fires"),
        (PeriodicJob::cron("p", "0 0 0 1 1 * 2001").new_job(tick()), "never fires"),
        (PeriodicJob::cron("p", "* * * * *").timezone("Mars/Olympus").new_job(tick()), "invalid timezone:"),
        (PeriodicJob::every("p", Duration::from_millis(10)).new_job(tick()), "invalid interval:"),
        (PeriodicJob::every("p", Duration::from_secs(5)), "invalid job:"),
        (PeriodicJob::every("bad name", Duration::from_secs(5)).new_job(tick()), "invalid periodic:"),
    ];
    for (job, want) in cases {
        let e = Worker::builder(t.client.clone())
            .queue("default", 1)
            .register_any(None, |_a, _c| async { Ok(()) })
            .periodic(job)
            .build()
            .err()
            .expect("rejected");
        assert!(e.to_string().contains(want), "{e} (wanted {want})");
        assert!(matches!(e, skiplock::Error::InvalidInput { .. }));
    }
    let e = Maintenance::builder(t.client.clone())
        .periodic(PeriodicJob::every("twice", Duration::from_secs(5)).new_job(tick()))
        .periodic(PeriodicJob::every("twice", Duration::from_secs(9)).new_job(tick()))
        .build()
        .unwrap_err();
    assert_eq!(e.to_string(), "invalid periodic: \"twice\" is registered twice");
    // Seconds are optional; a time zone is honoured.
    Maintenance::builder(t.client.clone())
        .periodic(PeriodicJob::cron("five", "*/5 * * * *").new_job(tick()))
        .periodic(PeriodicJob::cron("paris", "0 0 3 * * *").timezone("Europe/Paris").new_job(tick()))
        .build()
        .unwrap();
}

#[tokio::test]
async fn a_cron_schedule_in_a_time_zone_runs_at_that_wall_clock_time() {
    let t = fresh().await;
    let m = Maintenance::builder(t.client.clone())
        .id("tz")
        .periodic(
            PeriodicJob::cron("nightly", "30 3 * * *")
                .timezone("Asia/Kolkata")
                .new_job(NewJob::new("tick", &(), EnqueueOptions::new()).unwrap()),
        )
        .build()
        .unwrap();
    assert!(m.elect().await.unwrap());
    m.periodic_once().await.unwrap().unwrap();
    let next = t.client.periodic_jobs().await.unwrap()[0].next_run_at;
    // 03:30 in Kolkata (UTC+05:30) is 22:00 UTC.
    assert_eq!(next.format("%H:%M:%S").to_string(), "22:00:00");
}
