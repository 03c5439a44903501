//! The archive's dated partitions and retention: partitions are made ahead
//! of time, rows the default partition caught move into theirs, and
//! retention drops whole tables per state, leaving newer ones.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use skiplock::{JobState, Maintenance, RETENTION_MAX, Retention};

use crate::support::{TestDb, fresh};

/// Puts a finished job straight into the archive, finished at `days_ago`.
async fn archived(t: &TestDb, id: i64, state: &str, days_ago: i32) {
    let sql = format!(
        "INSERT INTO skiplock.jobs_archive (id, run_at, created_at, finished_at, state, attempt, max_attempts, priority,
             queue, kind, args, errors, tags, meta)
         VALUES ($1, now(), now(), now() - interval '{days_ago} days', '{state}', 1, 20, 0, 'default', 'old', '{{}}',
                 '[]', '{{}}', '{{}}')"
    );
    t.sql().await.execute(&sql, &[&id]).await.unwrap();
}

/// The table each archived job is in.
async fn tables(t: &TestDb) -> Vec<(i64, String)> {
    let sql = "SELECT id, tableoid::regclass::text FROM skiplock.jobs_archive ORDER BY id";
    t.sql().await.query(sql, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn day(days_ago: i64) -> String {
    (Utc::now() - TimeDelta::days(days_ago)).format("jobs_archive_p%Y%m%d").to_string()
}

#[tokio::test]
async fn retention_drops_an_old_partition_and_leaves_newer_ones() {
    let t = fresh().await;
    let m = Maintenance::builder(t.client.clone())
        .id("m")
        .archive_days_ahead(1)
        .retention(
            Retention::default()
                .completed(Some(Duration::from_secs(24 * 3600)))
                .discarded(Some(Duration::from_secs(7 * 24 * 3600))),
        )
        .build()
        .unwrap();
    assert!(m.elect().await.unwrap());
    // Partitions for ten days ago and three days ago, as if the service had
    // run then (time is passed in, not waited for), without retention (which
    // would apply at those times).
    let past = Maintenance::builder(t.client.clone()).id("m").archive_days_ahead(1).retention(Retention::forever());
    let past = past.build().unwrap();
    assert!(past.elect().await.unwrap(), "the same id: the same leader");
    let ten = past.archive_once(Some(Utc::now() - TimeDelta::days(10))).await.unwrap().unwrap();
    assert_eq!(ten.created, vec![day(10), day(9)]);
    past.archive_once(Some(Utc::now() - TimeDelta::days(3))).await.unwrap().unwrap();
    archived(&t, 1001, "completed", 10).await;
    archived(&t, 1002, "discarded", 10).await;
    archived(&t, 1003, "completed", 3).await;
    archived(&t, 1004, "discarded", 3).await;
    // And a job finished today through the usual path.
    let today = t.seed("default", "new", 1).await[0];
    let jobs = t.client.claim("default", 1, Duration::from_secs(30), "t").await.unwrap();
    t.client.complete(&[jobs[0].lease]).await.unwrap();

    let report = m.archive_once(None).await.unwrap().unwrap();
    assert!(report.created.contains(&day(0)), "today's partition, made before the finish above? {report:?}");
    assert!(report.dropped.contains(&day(10)), "every state of day -10 is past retention: {report:?}");
    assert!(report.dropped.contains(&format!("{}_completed", day(3))), "{report:?}");
    assert!(!report.dropped.iter().any(|d| *d == day(3) || *d == format!("{}_discarded", day(3))), "{report:?}");
    let left = tables(&t).await;
    assert_eq!(left.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![today, 1004]);
    assert_eq!(left[0].1, format!("skiplock.{}_completed", day(0)));
    assert_eq!(left[1].1, format!("skiplock.{}_discarded", day(3)));

    // What retention kept can still be shown and retried.
    let kept = t.client.job(1004).await.unwrap().unwrap();
    assert_eq!(kept.state, JobState::Discarded);
    assert_eq!(t.client.retry(&[1004]).await.unwrap(), vec![1004]);
    assert_eq!(t.client.job(1004).await.unwrap().unwrap().state, JobState::Available);
    // A second pass has nothing left to do.
    let again = m.archive_once(None).await.unwrap().unwrap();
    assert!(again.created.is_empty() && again.dropped.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_new_days_partition_takes_over_the_rows_the_default_partition_caught() {
    let t = fresh().await;
    // Finished "in five days" (a skewed clock), before any partition exists.
    archived(&t, 7, "completed", -5).await;
    archived(&t, 8, "cancelled", 0).await;
    assert!(tables(&t).await.iter().all(|(_, table)| table == "skiplock.jobs_archive_default"));
    let m = Maintenance::builder(t.client.clone()).id("m").archive_days_ahead(6).build().unwrap();
    assert!(m.elect().await.unwrap());
    let report = m.archive_once(None).await.unwrap().unwrap();
    assert_eq!(report.created.len(), 7);
    assert_eq!(
        tables(&t).await,
        vec![(7, format!("skiplock.{}_completed", day(-5))), (8, format!("skiplock.{}_cancelled", day(0)))]
    );
}

#[tokio::test]
async fn the_default_partition_is_pruned_by_retention_too() {
    let t = fresh().await;
    archived(&t, 1, "completed", 30).await;
    archived(&t, 2, "discarded", 30).await;
    let m =
        Maintenance::builder(t.client.clone()).id("m").retention(Retention::default().discarded(None)).build().unwrap();
    assert!(m.elect().await.unwrap());
    let report = m.archive_once(None).await.unwrap().unwrap();
    assert_eq!(report.default_pruned, 1);
    assert_eq!(tables(&t).await, vec![(2, "skiplock.jobs_archive_default".to_owned())], "discarded kept forever");
}

/// Retention is bounded (`RETENTION_MAX`, 100 years; `None` keeps forever):
/// a longer one is refused when the maintenance is built, naming the state,
/// instead of overflowing the archive pass's interval arithmetic on every
/// pass (so no partition was made ahead any more). The longest allowed
/// runs a pass.
#[tokio::test]
async fn retention_past_its_maximum_is_refused_naming_the_state() {
    let t = fresh().await;
    let too_long = RETENTION_MAX + Duration::from_secs(1);
    for (field, keep) in [
        ("retention.completed", Retention::default().completed(Some(too_long))),
        ("retention.cancelled", Retention::default().cancelled(Some(too_long))),
        ("retention.discarded", Retention::default().discarded(Some(Duration::MAX))),
    ] {
        let e = Maintenance::builder(t.client.clone()).retention(keep).build().unwrap_err().to_string();
        assert!(e.starts_with(&format!("invalid {field}: ")), "{e}");
        let w = skiplock::Worker::builder(t.client.clone()).queue("default", 1).retention(keep);
        let e = w.register_any(None, |_args, _ctx| async { Ok(()) }).build().err().unwrap().to_string();
        assert!(e.starts_with(&format!("invalid {field}: ")), "the worker's builder too: {e}");
    }
    let longest = Retention::default().completed(Some(RETENTION_MAX)).cancelled(Some(RETENTION_MAX));
    let m = Maintenance::builder(t.client.clone()).id("m").retention(longest.discarded(Some(RETENTION_MAX)));
    let m = m.build().unwrap();
    assert!(m.elect().await.unwrap());
    let report = m.archive_once(None).await.unwrap().unwrap();
    assert!(report.created.contains(&day(0)), "{report:?}");
}
