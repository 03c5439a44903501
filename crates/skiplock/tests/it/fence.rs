//! Fencing: writes from a stale lease change nothing and say so.

use std::time::Duration;

use skiplock::{Finish, JobState, Outcome};

use crate::support::{TestDb, fresh};

const LEASE: Duration = Duration::from_secs(60);

/// Expires every running lease, as if their workers had stopped heartbeating.
async fn expire_leases(t: &TestDb) {
    t.sql()
        .await
        .execute("UPDATE skiplock.jobs SET lease_expires_at = now() - interval '1 second' WHERE state = 'running'", &[])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stale_completion_is_rejected_and_the_current_one_wins() {
    let t = fresh().await;
    let id = t.seed("default", "k", 1).await[0];
    let first = t.client.claim("default", 1, LEASE, "a").await.unwrap().pop().unwrap();
    expire_leases(&t).await;
    let rescued = t.client.rescue(100).await.unwrap();
    assert_eq!(rescued.rescued, vec![(id, JobState::Available)]);
    let second = t.client.claim("default", 1, LEASE, "b").await.unwrap().pop().unwrap();
    assert_eq!(second.id, id);
    assert_ne!(second.lease.token, first.lease.token);
    assert_eq!(second.attempt, 2);

    // The first holder wakes up and reports: every kind of write is refused.
    for outcome in [
        Outcome::Completed,
        Outcome::Failed { error: "late".into(), retry_in: Duration::ZERO },
        Outcome::Snoozed(Duration::ZERO),
        Outcome::Released,
        Outcome::Cancelled(None),
        Outcome::Discarded("late".into()),
    ] {
        let r = t.client.finish(&[Finish { lease: first.lease, outcome }]).await.unwrap();
        assert_eq!(r.stale, vec![id]);
        assert!(r.applied.is_empty());
    }
    let hb = t.client.heartbeat(&[first.lease], LEASE).await.unwrap();
    assert_eq!(hb.lost, vec![id]);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.lease_token, row.attempt), (JobState::Running, Some(second.lease.token), 2));

    let r = t.client.complete(&[second.lease]).await.unwrap();
    assert_eq!(r.applied, vec![(id, JobState::Completed)]);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Completed);
    assert_eq!(row.errors.len(), 1, "the lease loss is in the history");
    assert!(row.errors[0].error.contains("lease expired"));
    // A second completion with the same lease is stale: nothing is finished twice.
    assert_eq!(t.client.complete(&[second.lease]).await.unwrap().stale, vec![id]);
}

#[tokio::test]
async fn a_mixed_batch_applies_the_live_leases_and_reports_the_stale() {
    let t = fresh().await;
    t.seed("default", "k", 3).await;
    let jobs = t.client.claim("default", 3, LEASE, "a").await.unwrap();
    let mut forged = jobs[2].lease;
    forged.token += 1_000_000;
    let r = t
        .client
        .finish(&[
            Finish { lease: jobs[0].lease, outcome: Outcome::Completed },
            Finish { lease: jobs[1].lease, outcome: Outcome::Completed },
            Finish { lease: forged, outcome: Outcome::Completed },
        ])
        .await
        .unwrap();
    assert_eq!(r.applied.len(), 2);
    assert_eq!(r.stale, vec![jobs[2].id]);
}

#[tokio::test]
async fn heartbeats_extend_live_leases_only() {
    let t = fresh().await;
    t.seed("default", "k", 2).await;
    let jobs = t.client.claim("default", 2, Duration::from_secs(5), "a").await.unwrap();
    let before = t.client.job(jobs[0].id).await.unwrap().unwrap().lease_expires_at.unwrap();
    let hb = t.client.heartbeat(&[jobs[0].lease, jobs[1].lease], Duration::from_secs(600)).await.unwrap();
    assert_eq!(hb.extended.len(), 2);
    assert!(hb.lost.is_empty() && hb.cancel_requested.is_empty());
    let after = t.client.job(jobs[0].id).await.unwrap().unwrap().lease_expires_at.unwrap();
    assert!((after - before).num_seconds() >= 590);
    // An extended lease is not rescued.
    assert!(t.client.rescue(100).await.unwrap().rescued.is_empty());
}

#[tokio::test]
async fn rescue_discards_jobs_out_of_attempts() {
    let t = fresh().await;
    let id = t
        .client
        .enqueue_job(skiplock::NewJob::new("k", &(), skiplock::EnqueueOptions::new().max_attempts(1)).unwrap())
        .await
        .unwrap()
        .id;
    t.client.claim("default", 1, LEASE, "a").await.unwrap();
    expire_leases(&t).await;
    assert_eq!(t.client.rescue(100).await.unwrap().rescued, vec![(id, JobState::Discarded)]);
    assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Discarded);
}

/// A heartbeat from a stale lease writes nothing, progress included: the
/// current attempt's progress stays the current attempt's. (The worker's
/// heartbeat statement itself, with the progress a handler set.)
#[tokio::test]
async fn a_stale_heartbeat_writes_no_progress() {
    let t = fresh().await;
    let id = t.seed("default", "k", 1).await[0];
    let first = t.client.claim("default", 1, LEASE, "a").await.unwrap().pop().unwrap();
    expire_leases(&t).await;
    t.client.rescue(10).await.unwrap();
    let second = t.client.claim("default", 1, LEASE, "b").await.unwrap().pop().unwrap();
    let (_, sql, types) = skiplock::__private::statements(&skiplock::Schema::default())
        .into_iter()
        .find(|(name, _, _)| *name == "job/heartbeat.sql")
        .unwrap();
    let pg = t.sql().await;
    let stmt = pg.prepare_typed(&sql, &types).await.unwrap();
    let progress = vec![Some(serde_json::json!({ "page": 9 }))];
    let (worker, instance, running): (Option<&str>, Option<i64>, Option<i32>) = (None, None, None);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&vec![id], &vec![first.lease.token], &60_000i64, &progress, &worker, &instance, &running];
    let rows = pg.query(&stmt, &params).await.unwrap();
    assert!(rows.is_empty(), "the stale lease extended nothing");
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.lease_token, Some(second.lease.token));
    assert!(row.meta.get("progress").is_none(), "{:?}", row.meta);
    // The same statement with the current lease writes it.
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&vec![id], &vec![second.lease.token], &60_000i64, &progress, &worker, &instance, &running];
    assert_eq!(pg.query(&stmt, &params).await.unwrap().len(), 1);
    let row = t.client.job(id).await.unwrap().unwrap();
    assert_eq!(row.meta["progress"], serde_json::json!({ "page": 9 }));
}
