//! Fail, retry, discard, snooze, cancel, operator retry: the state machine.

use std::time::Duration;

use skiplock::{CancelResult, EnqueueOptions, Finish, JobState, NewJob, Outcome};

use crate::support::fresh;

const LEASE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_failure_is_retried_with_backoff_then_discarded_with_its_history() {
    let t = fresh().await;
    let id =
        t.client.enqueue_job(NewJob::new("k", &(), EnqueueOptions::new().max_attempts(2)).unwrap()).await.unwrap().id;

    let j = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
    let r = t.client.fail(&[(j.lease, "boom 1".into(), Duration::from_secs(30))]).await.unwrap();
    assert_eq!(r.applied, vec![(id, JobState::Retryable)]);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Retryable);
    assert!(row.lease_token.is_none());
    let wait = (row.run_at - row.errors[0].at).num_seconds();
    assert!((29..=30).contains(&wait), "retry in 30s, got {wait}");
    assert_eq!((row.errors[0].attempt, row.errors[0].error.as_str()), (1, "boom 1"));
    assert!(t.client.claim("default", 1, LEASE, "w").await.unwrap().is_empty(), "backoff holds it back");

    t.sql().await.execute("UPDATE skiplock.jobs SET run_at = now() - interval '1 second'", &[]).await.unwrap();
    assert_eq!(t.client.promote(100).await.unwrap().total(), 1);
    let j = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
    assert_eq!(j.attempt, 2);
    let r = t.client.fail(&[(j.lease, "boom 2".into(), Duration::from_secs(30))]).await.unwrap();
    assert_eq!(r.applied, vec![(id, JobState::Discarded)]);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Discarded);
    assert!(row.finished_at.is_some());
    let errors: Vec<_> = row.errors.iter().map(|e| (e.attempt, e.error.as_str())).collect();
    assert_eq!(errors, vec![(1, "boom 1"), (2, "boom 2")]);
    assert_eq!(t.count("jobs", "true").await, 0, "the hot table keeps only unfinished jobs");

    // The operator retries it: back to available with one more attempt.
    assert_eq!(t.client.retry(&[id]).await.unwrap(), vec![id]);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempt, row.max_attempts), (JobState::Available, 2, 3));
    assert_eq!(t.count("jobs_archive", "true").await, 0);
    let j = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
    assert_eq!(j.attempt, 3);
}

#[tokio::test]
async fn a_zero_backoff_retries_at_once() {
    let t = fresh().await;
    t.seed("default", "k", 1).await;
    let j = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
    let r = t.client.fail(&[(j.lease, "flaky".into(), Duration::ZERO)]).await.unwrap();
    assert_eq!(r.applied, vec![(j.id, JobState::Available)]);
    assert_eq!(t.client.claim("default", 1, LEASE, "w").await.unwrap()[0].attempt, 2);
}

#[tokio::test]
async fn snooze_and_release_do_not_use_up_an_attempt() {
    let t = fresh().await;
    let id = t.seed("default", "k", 1).await[0];
    let j = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
    assert_eq!(j.attempt, 1);
    let r = t.client.snooze(&[j.lease], Duration::from_secs(600)).await.unwrap();
    assert_eq!(r.applied, vec![(id, JobState::Scheduled)]);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempt), (JobState::Scheduled, 0));
    assert!(row.errors.is_empty());

    t.sql().await.execute("UPDATE skiplock.jobs SET run_at = now()", &[]).await.unwrap();
    t.client.promote(10).await.unwrap();
    let j2 = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
    assert_eq!(j2.attempt, 1, "the snoozed attempt was given back");
    assert_ne!(j2.lease.token, j.lease.token, "a new claim, a new token");
    let r = t.client.release(&[j2.lease]).await.unwrap();
    assert_eq!(r.applied, vec![(id, JobState::Available)]);
    let j3 = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
    assert_eq!(j3.attempt, 1);
    // The old tokens are dead.
    assert_eq!(t.client.complete(&[j.lease, j2.lease]).await.unwrap().stale.len(), 2);
}

#[tokio::test]
async fn handlers_can_cancel_or_discard_outright() {
    let t = fresh().await;
    t.seed("default", "k", 2).await;
    let js = t.client.claim("default", 2, LEASE, "w").await.unwrap();
    let r = t
        .client
        .finish(&[
            Finish { lease: js[0].lease, outcome: Outcome::Cancelled(Some("user left".into())) },
            Finish { lease: js[1].lease, outcome: Outcome::Discarded("bad input".into()) },
        ])
        .await
        .unwrap();
    let mut applied = r.applied.clone();
    applied.sort();
    assert_eq!(applied, vec![(js[0].id, JobState::Cancelled), (js[1].id, JobState::Discarded)]);
    assert_eq!(t.client.job(js[1].id).await.unwrap().unwrap().errors[0].error, "bad input");
}

#[tokio::test]
async fn operator_cancel_finishes_waiting_jobs_and_flags_running_ones() {
    let t = fresh().await;
    let ids = t.seed("default", "k", 2).await;
    let running = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
    let waiting = if running.id == ids[0] { ids[1] } else { ids[0] };
    let out = t.client.cancel(&[waiting, running.id, 999_999]).await.unwrap();
    assert_eq!(
        out,
        vec![
            (waiting, CancelResult::Cancelled),
            (running.id, CancelResult::Cancelling),
            (999_999, CancelResult::NotFound)
        ]
    );
    assert_eq!(t.client.job(waiting).await.unwrap().unwrap().state, JobState::Cancelled);
    // The running job's worker learns of it at its next heartbeat...
    let hb = t.client.heartbeat(&[running.lease], LEASE).await.unwrap();
    assert_eq!(hb.cancel_requested, vec![running.id]);
    // ...and its handler stops, so the job ends cancelled.
    let r = t.client.finish(&[Finish { lease: running.lease, outcome: Outcome::Cancelled(None) }]).await.unwrap();
    assert_eq!(r.applied, vec![(running.id, JobState::Cancelled)]);
    // Cancelling a finished job finds nothing.
    assert_eq!(t.client.cancel(&[waiting]).await.unwrap(), vec![(waiting, CancelResult::NotFound)]);
}

#[tokio::test]
async fn jobs_can_be_listed_and_counted() {
    let t = fresh().await;
    t.seed("a", "k1", 3).await;
    t.seed("b", "k2", 2).await;
    let j = t.client.claim("a", 1, LEASE, "w").await.unwrap().pop().unwrap();
    t.client.complete(&[j.lease]).await.unwrap();

    let all = t.client.jobs_list(&skiplock::JobFilter::new()).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let done = t.client.jobs_list(&skiplock::JobFilter::new().state(JobState::Completed)).await.unwrap();
    assert_eq!(done.iter().map(|r| r.id).collect::<Vec<_>>(), vec![j.id]);
    let b = t.client.jobs_list(&skiplock::JobFilter::new().queue("b").limit(1)).await.unwrap();
    assert_eq!(b.len(), 1);
    let page2 = t.client.jobs_list(&skiplock::JobFilter::new().before_id(all[1].id)).await.unwrap();
    assert_eq!(page2.len(), 3);

    let stats = t.client.stats().await.unwrap();
    let get = |q: &str, s: JobState| stats.iter().find(|x| x.queue == q && x.state == s).map(|x| x.count);
    assert_eq!(get("a", JobState::Available), Some(2));
    assert_eq!(get("a", JobState::Completed), Some(1));
    assert_eq!(get("b", JobState::Available), Some(2));
    assert!(
        stats
            .iter()
            .find(|x| x.queue == "a" && x.state == JobState::Available)
            .unwrap()
            .oldest_available_secs
            .is_some()
    );
}
