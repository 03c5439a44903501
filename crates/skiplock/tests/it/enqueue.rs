//! Enqueueing: in the caller's transaction, unique keys, options, bad input.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use skiplock::{EnqueueOptions, Error, Job, JobState, NewJob};

use crate::support::fresh;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Email {
    to: String,
}

impl Job for Email {
    const KIND: &'static str = "email";
    const QUEUE: &'static str = "mail";
    const MAX_ATTEMPTS: i32 = 3;
}

#[tokio::test]
async fn typed_jobs_carry_their_kind_queue_and_defaults() {
    let t = fresh().await;
    let e = t.client.enqueue(&Email { to: "a@b.c".into() }, EnqueueOptions::new()).await.unwrap();
    assert!(e.inserted);
    let row = t.client.job(e.id).await.unwrap().unwrap();
    assert_eq!((row.kind.as_str(), row.queue.as_str(), row.max_attempts), ("email", "mail", 3));
    assert_eq!(row.state, JobState::Available);
    let job = t.client.claim("mail", 1, Duration::from_secs(30), "w").await.unwrap().pop().unwrap();
    assert_eq!(job.args::<Email>().unwrap(), Email { to: "a@b.c".into() });
}

#[tokio::test]
async fn options_are_stored() {
    let t = fresh().await;
    let opts = EnqueueOptions::new()
        .queue("q2")
        .priority(7)
        .max_attempts(9)
        .tag("billing")
        .tag("eu")
        .meta(serde_json::json!({ "trace": "abc" }))
        .delay(Duration::from_secs(120));
    let id = t.client.enqueue_job(NewJob::new("k", &[1, 2], opts).unwrap()).await.unwrap().id;
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.queue, "q2");
    assert_eq!((row.priority, row.max_attempts), (7, 9));
    assert_eq!(row.tags, vec!["billing", "eu"]);
    assert_eq!(row.meta["trace"], "abc");
    assert_eq!(row.args, serde_json::json!([1, 2]));
    assert_eq!(row.state, JobState::Scheduled);
    assert_eq!((row.run_at - row.created_at).num_seconds(), 120, "delay counts on the database clock");
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_does_not_exist() {
    let t = fresh().await;
    let mut pg = t.sql().await;
    pg.batch_execute("CREATE TABLE users (id bigserial PRIMARY KEY, name text)").await.unwrap();

    let tx = pg.transaction().await.unwrap();
    tx.execute("INSERT INTO users (name) VALUES ('rolled back')", &[]).await.unwrap();
    let gone = t.client.enqueue_tx(&tx, &Email { to: "x".into() }, EnqueueOptions::new()).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(t.client.job(gone.id).await.unwrap().is_none());

    let tx = pg.transaction().await.unwrap();
    tx.execute("INSERT INTO users (name) VALUES ('kept')", &[]).await.unwrap();
    let kept = t.client.enqueue_tx(&tx, &Email { to: "y".into() }, EnqueueOptions::new()).await.unwrap();
    // Not visible to others before commit.
    assert!(t.client.job(kept.id).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert!(t.client.job(kept.id).await.unwrap().is_some());
    assert_eq!(t.count("jobs", "true").await, 1);
}

#[tokio::test]
async fn a_duplicate_unique_key_inserts_nothing_and_returns_the_holder() {
    let t = fresh().await;
    let mk = |k: &str| NewJob::new("k", &(), EnqueueOptions::new().unique_key(k)).unwrap();
    let first = t.client.enqueue_job(mk("report:2026-11")).await.unwrap();
    assert!(first.inserted);
    let again = t.client.enqueue_job(mk("report:2026-11")).await.unwrap();
    assert_eq!((again.id, again.inserted), (first.id, false));
    assert_eq!(t.count("jobs", "true").await, 1);

    // In one batch: duplicates of each other and of an existing job.
    let out = t.client.enqueue_many(vec![mk("a"), mk("a"), mk("report:2026-11"), mk("b")]).await.unwrap();
    assert!(out[0].inserted && !out[1].inserted && !out[2].inserted && out[3].inserted);
    assert_eq!(out[1].id, out[0].id);
    assert_eq!(out[2].id, first.id);
    assert_eq!(t.count("jobs", "true").await, 3);

    // Once the holder is finished, the key is free again.
    let job = t.client.claim("default", 10, Duration::from_secs(30), "w").await.unwrap();
    let held = job.iter().find(|j| j.id == first.id).unwrap();
    t.client.complete(&[held.lease]).await.unwrap();
    let fresh_one = t.client.enqueue_job(mk("report:2026-11")).await.unwrap();
    assert!(fresh_one.inserted);
    assert_ne!(fresh_one.id, first.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueuers_of_one_key_make_one_job() {
    let t = fresh().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = t.client.clone();
        tasks.push(tokio::spawn(async move {
            let jobs = (0..50)
                .map(|i| NewJob::new("k", &(), EnqueueOptions::new().unique_key(format!("key-{i}"))).unwrap())
                .collect();
            c.enqueue_many(jobs).await.unwrap()
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(t.count("jobs", "true").await, 50);
    for i in 0..50 {
        let ids: std::collections::HashSet<i64> = results.iter().map(|r| r[i].id).collect();
        assert_eq!(ids.len(), 1, "every enqueuer of key-{i} got the same id");
        assert_eq!(results.iter().filter(|r| r[i].inserted).count(), 1);
    }
}

#[tokio::test]
async fn bad_input_is_rejected_with_the_field_named_and_nothing_written() {
    let t = fresh().await;
    let cases: Vec<(NewJob, &str)> = vec![
        (NewJob::new("k", &(), EnqueueOptions::new().queue("")).unwrap(), "invalid queue: must not be empty"),
        (NewJob::new("k", &(), EnqueueOptions::new().queue("\"; drop table jobs; --")).unwrap(), "invalid queue:"),
        (NewJob::new("k", &(), EnqueueOptions::new().queue("a\0b")).unwrap(), "invalid queue:"),
        (NewJob::new("k", &(), EnqueueOptions::new().queue("q".repeat(129))).unwrap(), "invalid queue: is 129 bytes"),
        (
            NewJob::new("k", &(), EnqueueOptions::new().queue("q'; DELETE FROM skiplock.jobs")).unwrap(),
            "invalid queue:",
        ),
        (NewJob::new("", &(), EnqueueOptions::new()).unwrap(), "invalid kind:"),
        (NewJob::new("it's", &(), EnqueueOptions::new()).unwrap(), "invalid kind:"),
        (NewJob::new("k".repeat(256), &(), EnqueueOptions::new()).unwrap(), "invalid kind: is 256 bytes"),
        (NewJob::new("\"; drop table jobs; --", &(), EnqueueOptions::new()).unwrap(), "invalid kind:"),
        (NewJob::new("a\0b", &(), EnqueueOptions::new()).unwrap(), "invalid kind:"),
        (NewJob::new("k", &(), EnqueueOptions::new().max_attempts(10_001)).unwrap(), "invalid max_attempts:"),
        (NewJob::new("k", &(), EnqueueOptions::new().priority(-1)).unwrap(), "invalid priority:"),
        (NewJob::new("k", &(), EnqueueOptions::new().priority(10)).unwrap(), "invalid priority:"),
        (NewJob::new("k", &(), EnqueueOptions::new().max_attempts(0)).unwrap(), "invalid max_attempts:"),
        (NewJob::new("k", &(), EnqueueOptions::new().max_attempts(-5)).unwrap(), "invalid max_attempts:"),
        (
            NewJob::new("k", &(), EnqueueOptions::new().run_at(chrono::DateTime::from_timestamp(-10, 0).unwrap()))
                .unwrap(),
            "invalid run_at:",
        ),
        (
            NewJob::new("k", &(), EnqueueOptions::new().run_at(chrono::Utc::now() + chrono::Duration::days(365 * 50)))
                .unwrap(),
            "invalid run_at:",
        ),
        (NewJob::new("k", &"a\u{0}b", EnqueueOptions::new()).unwrap(), "invalid args: contains a NUL"),
        (NewJob::new("k", &(), EnqueueOptions::new().unique_key("a\0")).unwrap(), "invalid unique_key:"),
        (NewJob::new("k", &(), EnqueueOptions::new().tag("")).unwrap(), "invalid tags[0]:"),
        (NewJob::new("k", &(), EnqueueOptions::new().meta(serde_json::json!([1]))).unwrap(), "invalid meta:"),
        (NewJob::new("k", &"x".repeat(1 << 20), EnqueueOptions::new()).unwrap(), "invalid args: is 1048578 bytes"),
    ];
    for (job, want) in cases {
        let e = t.client.enqueue_job(job).await.unwrap_err();
        assert!(matches!(e, Error::InvalidInput { .. }), "{e:?}");
        assert!(e.to_string().starts_with(want), "want {want:?}, got {e}");
    }
    let e = NewJob::from_json("k", "{not json", EnqueueOptions::new()).unwrap_err();
    assert!(e.to_string().starts_with("invalid args: is not valid JSON"), "{e}");
    // In a batch, the bad job is named by index and nothing is inserted.
    let good = NewJob::new("k", &(), EnqueueOptions::new()).unwrap();
    let bad = NewJob::new("k", &(), EnqueueOptions::new().priority(42)).unwrap();
    let e = t.client.enqueue_many(vec![good.clone(), good, bad]).await.unwrap_err();
    assert!(e.to_string().starts_with("invalid jobs[2].priority:"), "{e}");
    assert_eq!(t.count("jobs", "true").await, 0);
}

#[tokio::test]
async fn the_args_limit_is_configurable() {
    let t = crate::support::fresh_with(|b| b.args_max_bytes(100)).await;
    let e = t.client.enqueue_job(NewJob::new("k", &"y".repeat(200), EnqueueOptions::new()).unwrap()).await.unwrap_err();
    assert!(e.to_string().contains("the limit is 100"), "{e}");
}

/// Batches of 100 or more jobs without unique keys go through COPY.
#[tokio::test]
async fn a_big_batch_goes_through_copy_with_every_option_kept() {
    let t = fresh().await;
    let jobs: Vec<NewJob> = (0..12_000)
        .map(|i| {
            let mut o = EnqueueOptions::new().queue(if i % 2 == 0 { "even" } else { "odd" }).priority((i % 10) as i16);
            if i % 3 == 0 {
                o = o.delay(Duration::from_secs(600)).tag("later").meta(serde_json::json!({ "i": i }));
            }
            if i % 7 == 0 {
                o = o.timeout(Duration::from_millis(1500)).max_attempts(3);
            }
            NewJob::new("bulk", &serde_json::json!({ "i": i }), o).unwrap()
        })
        .collect();
    let out = t.client.enqueue_many(jobs).await.unwrap();
    assert_eq!(out.len(), 12_000);
    assert!(out.iter().all(|e| e.inserted));
    assert!(out.windows(2).all(|w| w[0].id < w[1].id), "ids follow the input order");
    assert_eq!(t.count("jobs", "true").await, 12_000);
    assert_eq!(t.count("jobs", "state = 'scheduled'").await, 4_000);
    let row = t.client.job(out[21].id).await.unwrap().unwrap();
    assert_eq!(row.args["i"], 21);
    assert_eq!((row.queue.as_str(), row.priority, row.state), ("odd", 1, JobState::Scheduled));
    assert_eq!((row.tags.clone(), row.meta["i"].clone()), (vec!["later".to_owned()], serde_json::json!(21)));
    assert_eq!((row.timeout_ms, row.max_attempts), (Some(1500), 3));
    assert_eq!((row.run_at - row.created_at).num_seconds(), 600, "delays count on the database clock");
}

#[tokio::test]
async fn a_copy_in_a_rolled_back_transaction_leaves_nothing() {
    let t = fresh().await;
    let mut pg = t.sql().await;
    let jobs = || (0..500).map(|i| NewJob::new("bulk", &i, EnqueueOptions::new()).unwrap()).collect::<Vec<_>>();
    let tx = pg.transaction().await.unwrap();
    t.client.enqueue_many_tx(&tx, jobs()).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(t.count("jobs", "true").await, 0);
    let tx = pg.transaction().await.unwrap();
    t.client.enqueue_many_tx(&tx, jobs()).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(t.count("jobs", "true").await, 500);
}
