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

/// A day's partition is bounded by UTC midnights whatever the session's
/// DateStyle and TimeZone: with `SQL, DMY` and `Asia/Shanghai` the bounds
/// used to be printed as `… CST`, which PostgreSQL reads back as US Central
/// time, 14 hours off, so the rows moved in from the default partition broke
/// the partition's range and the archive pass failed every time.
#[tokio::test]
async fn partition_bounds_are_utc_midnights_whatever_the_session_s_datestyle_and_timezone() {
    let t = fresh().await;
    let pg = t.sql().await;
    let settings = "SET datestyle = 'SQL, DMY'; SET timezone = 'Asia/Shanghai'";
    // A job finished at 01:00 UTC in ten days (a skewed clock), caught by
    // the default partition: its day's partition must take it.
    let ten = (Utc::now() + TimeDelta::days(10)).date_naive();
    let finished_at = format!("{ten} 01:00:00+00");
    archived(&t, 1, "completed", 0).await;
    pg.execute("UPDATE skiplock.jobs_archive SET finished_at = $1::text::timestamptz", &[&finished_at]).await.unwrap();
    pg.batch_execute(settings).await.unwrap();
    let made: Option<String> = pg
        .query_one("SELECT skiplock.archive_partition_create($1::text::date)", &[&ten.to_string()])
        .await
        .unwrap()
        .get(0);
    assert_eq!(made.as_deref(), Some(day(-10).as_str()));
    // The same through a worker's pass, on connections with these settings.
    let db = t.db.name().to_owned();
    pg.batch_execute(&format!(
        "ALTER DATABASE \"{db}\" SET datestyle = 'SQL, DMY'; ALTER DATABASE \"{db}\" SET timezone = 'Asia/Shanghai'"
    ))
    .await
    .unwrap();
    let soon = (Utc::now() + TimeDelta::days(2)).date_naive();
    archived(&t, 2, "completed", 0).await;
    let at = format!("{soon} 01:00:00+00");
    pg.execute("UPDATE skiplock.jobs_archive SET finished_at = $1::text::timestamptz WHERE id = 2", &[&at])
        .await
        .unwrap();
    let client = skiplock::Client::connect(t.db.url()).unwrap();
    let m = Maintenance::builder(client).id("m").build().unwrap();
    assert!(m.elect().await.unwrap());
    let report = m.archive_once(None).await.unwrap().unwrap();
    assert!(report.created.contains(&day(-2)), "{report:?}");

    let check = t.sql().await;
    check.batch_execute("SET datestyle = 'ISO'; SET timezone = 'UTC'").await.unwrap();
    for (name, d) in [(day(-10), ten), (day(-2), soon)] {
        let bound: String = check
            .query_one(
                "SELECT pg_get_expr(relpartbound, oid) FROM pg_class
                 WHERE relnamespace = 'skiplock'::regnamespace AND relname = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        let next = d.succ_opt().unwrap();
        assert_eq!(bound, format!("FOR VALUES FROM ('{d} 00:00:00+00') TO ('{next} 00:00:00+00')"), "{name}");
    }
    assert_eq!(
        tables(&t).await,
        vec![(1, format!("skiplock.{}_completed", day(-10))), (2, format!("skiplock.{}_completed", day(-2)))]
    );
}

/// The archive's DDL never holds the workers up (review #8). A reader
/// holds the default partition (an open transaction that read it), so the
/// ATTACH of a new day waits for it, up to its lock timeout; meanwhile a
/// claim and its completion, which write to the archive, go through: the
/// DDL locks the default partition only, and holds no lock on the whole
/// archive while it waits or afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_and_finishes_never_wait_for_the_archives_ddl() {
    let t = fresh().await;
    archived(&t, 1_000_000, "completed", 30).await;
    let m = Maintenance::builder(t.client.clone()).id("m").retention(Retention::forever()).build().unwrap();
    assert!(m.elect().await.unwrap());
    m.archive_once(None).await.unwrap().unwrap();
    let id = t.seed("default", "k", 1).await[0];

    let mut reader = t.sql().await;
    let open = reader.transaction().await.unwrap();
    open.query("SELECT count(*) FROM skiplock.jobs_archive_default", &[]).await.unwrap();
    let ahead = Utc::now() + TimeDelta::days(10);
    let pass = tokio::spawn({
        let m = m.clone();
        async move { m.archive_once(Some(ahead)).await }
    });
    t.wait_for_lock_waiter("the archive pass waiting for the reader").await;
    // The pass waits for the reader; a claim and a completion do not.
    let job = t.client.claim("default", 1, Duration::from_secs(30), "w").await.unwrap().pop().unwrap();
    assert_eq!(job.id, id);
    assert_eq!(t.client.complete(&[job.lease]).await.unwrap().applied, vec![(id, JobState::Completed)]);
    assert!(!pass.is_finished(), "the claim and the completion went through while the DDL waited");
    let waited = pass.await.unwrap();
    assert!(waited.is_err(), "the DDL gave up at its lock timeout: {waited:?}");
    open.commit().await.unwrap();
    let report = m.archive_once(Some(ahead)).await.unwrap().unwrap();
    assert!(!report.created.is_empty(), "made once the reader was gone: {report:?}");
}
