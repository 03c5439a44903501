//! Claiming: exactly once under concurrency, in order, with fresh tokens.

use std::collections::HashSet;
use std::time::Duration;

use skiplock::{EnqueueOptions, JobState, NewJob};

use crate::support::fresh;

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_claimers_take_every_job_exactly_once() {
    let t = fresh().await;
    let ids: HashSet<i64> = t.seed("default", "noop", 10_000).await.into_iter().collect();
    assert_eq!(ids.len(), 10_000);

    let mut tasks = Vec::new();
    for w in 0..8 {
        let client = t.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = client.claim("default", 50, LEASE, &format!("w{w}")).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                let leases: Vec<_> = batch.iter().map(|j| j.lease).collect();
                let report = client.complete(&leases).await.unwrap();
                assert!(report.stale.is_empty());
                mine.extend(batch.into_iter().map(|j| (j.id, j.lease.token)));
            }
            mine
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    let claimed_ids: HashSet<i64> = claimed.iter().map(|(id, _)| *id).collect();
    assert_eq!(claimed.len(), 10_000, "every job claimed once, none twice");
    assert_eq!(claimed_ids, ids);
    let tokens: HashSet<i64> = claimed.iter().map(|(_, tok)| *tok).collect();
    assert_eq!(tokens.len(), 10_000, "every claim has its own lease token");
    assert_eq!(t.count("jobs", "true").await, 0);
    assert_eq!(t.count("jobs_archive", "state = 'completed'").await, 10_000);
}

#[tokio::test]
async fn claims_follow_priority_then_run_at_then_id() {
    let t = fresh().await;
    let mk = |p: i16| NewJob::new("k", &serde_json::json!({ "p": p }), EnqueueOptions::new().priority(p)).unwrap();
    let ids = t.client.enqueue_many(vec![mk(5), mk(1), mk(5), mk(0), mk(1)]).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let one = t.client.claim("default", 1, LEASE, "w").await.unwrap();
        seen.push(one[0].id);
    }
    assert_eq!(seen, vec![ids[3].id, ids[1].id, ids[4].id, ids[0].id, ids[2].id]);
}

#[tokio::test]
async fn a_claim_marks_running_counts_the_attempt_and_sets_the_lease() {
    let t = fresh().await;
    let id = t.seed("q1", "k", 1).await[0];
    assert!(t.client.claim("other", 10, LEASE, "w").await.unwrap().is_empty(), "queues are separate");
    let job = t.client.claim("q1", 10, LEASE, "worker-7").await.unwrap().pop().unwrap();
    assert_eq!((job.id, job.attempt, job.queue.as_str(), job.kind.as_str()), (id, 1, "q1", "k"));
    assert_eq!(job.args.get(), r#"{"i": 0}"#);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Running);
    assert_eq!(row.leased_by.as_deref(), Some("worker-7"));
    assert_eq!(row.lease_token, Some(job.lease.token));
    let lease_left = (row.lease_expires_at.unwrap() - row.attempted_at.unwrap()).num_seconds();
    assert_eq!(lease_left, 60);
    assert!(t.client.claim("q1", 10, LEASE, "w").await.unwrap().is_empty(), "a running job is not claimed again");
}

#[tokio::test]
async fn scheduled_jobs_wait_for_the_scheduler() {
    let t = fresh().await;
    let later = t
        .client
        .enqueue_job(NewJob::new("k", &(), EnqueueOptions::new().delay(Duration::from_secs(3600))).unwrap())
        .await
        .unwrap();
    assert_eq!(t.client.job(later.id).await.unwrap().unwrap().state, JobState::Scheduled);
    assert!(t.client.claim("default", 10, LEASE, "w").await.unwrap().is_empty());
    // Bring it due by moving its run_at back, as time passing would.
    t.sql().await.execute("UPDATE skiplock.jobs SET run_at = now() - interval '1 second'", &[]).await.unwrap();
    let report = t.client.promote(1000).await.unwrap();
    assert_eq!(report.per_queue, vec![("default".to_owned(), 1)]);
    assert_eq!(t.client.claim("default", 10, LEASE, "w").await.unwrap()[0].id, later.id);
}

#[tokio::test]
async fn a_paused_queue_yields_nothing_until_resumed() {
    let t = fresh().await;
    t.seed("mail", "k", 3).await;
    t.client.queue_pause("mail").await.unwrap();
    assert!(t.client.claim("mail", 10, LEASE, "w").await.unwrap().is_empty());
    let q = t.client.queues().await.unwrap();
    assert!(q.iter().any(|q| q.name == "mail" && q.paused && q.available == 3));
    t.client.queue_resume("mail").await.unwrap();
    assert_eq!(t.client.claim("mail", 10, LEASE, "w").await.unwrap().len(), 3);
}

#[tokio::test]
async fn bad_claim_arguments_are_rejected() {
    let t = fresh().await;
    let e = t.client.claim("bad queue", 1, LEASE, "w").await.unwrap_err().to_string();
    assert!(e.starts_with("invalid queue:"), "{e}");
    let e = t.client.claim("q", 0, LEASE, "w").await.unwrap_err().to_string();
    assert!(e.starts_with("invalid limit:"), "{e}");
    let e = t.client.claim("q", 1, Duration::ZERO, "w").await.unwrap_err().to_string();
    assert!(e.starts_with("invalid lease:"), "{e}");
    // Review 15: a heartbeat with no lease at all would expire the jobs it
    // means to keep.
    t.seed("q", "k", 1).await;
    let held = t.client.claim("q", 1, LEASE, "w").await.unwrap();
    let e = t.client.heartbeat(&[held[0].lease], Duration::ZERO).await.unwrap_err().to_string();
    assert!(e.starts_with("invalid lease:"), "{e}");
    let row = t.client.job(held[0].id).await.unwrap().unwrap();
    assert_eq!(row.state, skiplock::JobState::Running, "the lease was left as it was");
}
