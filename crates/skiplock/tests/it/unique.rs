//! Unique jobs: by key or by (kind, args), scoped to states and periods,
//! enforced by the database under concurrent bulk enqueuers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rand::seq::SliceRandom;
use skiplock::{EnqueueOptions, JobState, Maintenance, NewJob};

use crate::support::fresh;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_keys_hold_under_eight_concurrent_bulk_enqueuers() {
    let t = fresh().await;
    const KEYS: usize = 300;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let client = skiplock::Client::connect(t.db.url()).unwrap();
        tasks.push(tokio::spawn(async move {
            // Every task enqueues every key, in its own random order: half by
            // explicit key, half by (kind, args), some keys kept past their
            // finish (unique_keys table).
            let mut order: Vec<usize> = (0..KEYS).collect();
            order.shuffle(&mut rand::rng());
            let jobs: Vec<NewJob> = order
                .iter()
                .map(|&k| {
                    let opts = match k % 3 {
                        0 => EnqueueOptions::new().unique_key(format!("key-{k}")),
                        1 => EnqueueOptions::new().unique_args(),
                        _ => EnqueueOptions::new().unique_args().unique_states(JobState::ALL),
                    };
                    NewJob::new("uniq", &serde_json::json!({ "k": k, "from": if k % 3 == 0 { task } else { 0 } }), opts)
                        .unwrap()
                })
                .collect();
            let out = client.enqueue_many(jobs).await.unwrap();
            order.into_iter().zip(out).map(|(k, e)| (k, e.id, e.inserted)).collect::<Vec<_>>()
        }));
    }
    let mut holder: HashMap<usize, i64> = HashMap::new();
    let mut inserted = 0;
    for task in tasks {
        for (k, id, ins) in task.await.unwrap() {
            inserted += usize::from(ins);
            assert_eq!(*holder.entry(k).or_insert(id), id, "key {k}: every enqueuer got the same job");
        }
    }
    assert_eq!(inserted, KEYS, "one job per key inserted");
    assert_eq!(t.count("jobs", "true").await, KEYS as i64);
    assert_eq!(holder.values().collect::<HashSet<_>>().len(), KEYS);
}

#[tokio::test]
async fn uniqueness_by_args_ignores_key_order_and_spacing() {
    let t = fresh().await;
    let opts = || EnqueueOptions::new().unique_args();
    let a = t.client.enqueue_job(NewJob::from_json("k", r#"{"a":1,"b":[1,2]}"#, opts()).unwrap()).await.unwrap();
    let b = t.client.enqueue_job(NewJob::from_json("k", r#"{ "b": [1, 2], "a": 1 }"#, opts()).unwrap()).await.unwrap();
    assert!(a.inserted && !b.inserted);
    assert_eq!(a.id, b.id);
    let other_kind = t.client.enqueue_job(NewJob::from_json("k2", r#"{"a":1,"b":[1,2]}"#, opts()).unwrap()).await;
    assert!(other_kind.unwrap().inserted, "the kind is part of the key");
    let other_args = t.client.enqueue_job(NewJob::from_json("k", r#"{"a":2,"b":[1,2]}"#, opts()).unwrap()).await;
    assert!(other_args.unwrap().inserted);
    let key = t.client.job(a.id).await.unwrap().unwrap().unique_key.unwrap();
    assert!(key.starts_with("kind:k:") && key.len() == "kind:k:".len() + 32, "{key}");
}

#[tokio::test]
async fn the_default_scope_frees_a_key_when_its_job_finishes() {
    let t = fresh().await;
    let opts = || EnqueueOptions::new().unique_key("report");
    let first = t.client.enqueue_job(NewJob::new("k", &(), opts()).unwrap()).await.unwrap();
    finish(&t, first.id).await;
    let second = t.client.enqueue_job(NewJob::new("k", &(), opts()).unwrap()).await.unwrap();
    assert!(second.inserted && second.id != first.id);
}

/// Claims and completes the job `id` (the only available one).
async fn finish(t: &crate::support::TestDb, id: i64) {
    let jobs = t.client.claim("default", 10, Duration::from_secs(30), "test").await.unwrap();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![id]);
    t.client.complete(&[jobs[0].lease]).await.unwrap();
}

#[tokio::test]
async fn a_scope_with_final_states_keeps_the_key_after_the_finish_and_only_for_those_states() {
    let t = fresh().await;
    let with_completed =
        [JobState::Available, JobState::Scheduled, JobState::Running, JobState::Retryable, JobState::Completed];
    let opts = |key: &str| EnqueueOptions::new().unique_key(key).unique_states(with_completed);
    // Completed is in the scope: the key stays taken by the archived job.
    let first = t.client.enqueue_job(NewJob::new("k", &(), opts("once")).unwrap()).await.unwrap();
    finish(&t, first.id).await;
    let again = t.client.enqueue_job(NewJob::new("k", &(), opts("once")).unwrap()).await.unwrap();
    assert_eq!((again.id, again.inserted), (first.id, false));
    assert_eq!(t.client.job(again.id).await.unwrap().unwrap().state, JobState::Completed);
    // Cancelled is not: a cancelled holder frees the key.
    let doomed = t.client.enqueue_job(NewJob::new("k", &(), opts("cancel-me")).unwrap()).await.unwrap();
    t.client.cancel(&[doomed.id]).await.unwrap();
    let fresh_one = t.client.enqueue_job(NewJob::new("k", &(), opts("cancel-me")).unwrap()).await.unwrap();
    assert!(fresh_one.inserted && fresh_one.id != doomed.id);
    // Once retention drops the holder, its key is free at once (the pruner
    // only tidies the table up later).
    t.sql().await.execute("DELETE FROM skiplock.jobs_archive WHERE id = $1", &[&first.id]).await.unwrap();
    let after = t.client.enqueue_job(NewJob::new("k", &(), opts("once")).unwrap()).await.unwrap();
    assert!(after.inserted && after.id != first.id);
}

/// A key kept past its job's finish is free again as soon as that job is
/// gone: dropped by retention, or deleted on completion by a worker that
/// keeps no completed jobs. No pruner pass is needed first.
#[tokio::test]
async fn a_key_whose_holder_is_gone_is_free_at_once() {
    let t = fresh().await;
    let opts = || EnqueueOptions::new().unique_key("nightly").unique_states(JobState::ALL);
    let first = t.client.enqueue_job(NewJob::new("k", &(), opts()).unwrap()).await.unwrap();
    let worker = skiplock::Worker::builder(t.client.clone())
        .queue("default", 1)
        .keep_completed(false)
        .register_any(None, |_args, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    crate::support::wait_completed(&mut events, &[first.id]).await;
    handle.shutdown().await;
    assert_eq!(t.count("jobs_archive", "true").await, 0, "deleted, not archived");
    let again = t.client.enqueue_job(NewJob::new("k", &(), opts()).unwrap()).await.unwrap();
    assert!(again.inserted && again.id != first.id, "{again:?}");
    // And the pruner then leaves the new holder's key alone.
    let m = Maintenance::builder(t.client.clone()).id("m").build().unwrap();
    assert!(m.elect().await.unwrap());
    m.archive_once(None).await.unwrap().unwrap();
    let held = t.client.enqueue_job(NewJob::new("k", &(), opts()).unwrap()).await.unwrap();
    assert_eq!((held.id, held.inserted), (again.id, false));
}

#[tokio::test]
async fn a_unique_period_puts_the_period_start_in_the_key() {
    let t = fresh().await;
    let opts = || {
        EnqueueOptions::new().unique_key("digest").unique_period(Duration::from_secs(3600)).unique_states(JobState::ALL)
    };
    let first = t.client.enqueue_job(NewJob::new("k", &(), opts()).unwrap()).await.unwrap();
    finish(&t, first.id).await;
    let again = t.client.enqueue_job(NewJob::new("k", &(), opts()).unwrap()).await.unwrap();
    assert_eq!((again.id, again.inserted), (first.id, false), "at most one per hour, even once completed");
    let key = t.client.job(first.id).await.unwrap().unwrap().unique_key.unwrap();
    let hour: String = t
        .sql()
        .await
        .query_one(
            "SELECT to_char(date_trunc('hour', now() AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:00:00\"Z\"')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(key, format!("digest@{hour}"));
    let expires: chrono::DateTime<chrono::Utc> = t
        .sql()
        .await
        .query_one("SELECT expires_at FROM skiplock.unique_keys WHERE key = $1", &[&key])
        .await
        .unwrap()
        .get(0);
    assert_eq!(expires.format("%M:%S").to_string(), "00:00", "the key expires at the hour's end");
}

#[tokio::test]
async fn bad_unique_options_are_rejected_naming_the_field() {
    // Checked before anything is sent: this client never connects.
    let client = skiplock::Client::connect("postgres://nobody@127.0.0.1:1/none").unwrap();
    let check = async |opts: EnqueueOptions| {
        client.enqueue_job(NewJob::new("k", &(), opts).unwrap()).await.unwrap_err().to_string()
    };
    let e =
        check(EnqueueOptions::new().unique_key("k").unique_states([JobState::Available, JobState::Completed])).await;
    assert!(e.starts_with("invalid unique_states: must include every unfinished state"), "{e}");
    let e = check(EnqueueOptions::new().unique_states(JobState::ALL)).await;
    assert_eq!(e, "invalid unique_states: needs unique_key or unique_args");
    let e = check(EnqueueOptions::new().unique_args().unique_period(Duration::from_millis(1500))).await;
    assert!(e.starts_with("invalid unique_period:"), "{e}");
}
