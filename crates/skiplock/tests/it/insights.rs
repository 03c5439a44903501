//! What the dashboard reads and does: the job search (filters, keyset pages
//! over hot and archived jobs), bulk actions by filter in batches, discard
//! and delete, the queue depth the leader counts, the statistics workers
//! record and the leader merges, periodic jobs paused and run now.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use skiplock::{
    ArgsFilter, BulkAction, EnqueueOptions, JobSearch, JobState, Maintenance, NewJob, PeriodicJob, StatsOutcome,
    StatsResolution, Worker,
};

use crate::support::{TestDb, fresh, wait_finished};

/// `n` jobs of `kind` on `queue`, args `{"i": i, "user": {"id": i % 3}}`,
/// the first tagged `vip`.
async fn seed(t: &TestDb, queue: &str, kind: &str, n: usize) -> Vec<i64> {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            let mut opts = EnqueueOptions::new().queue(queue);
            if i == 0 {
                opts = opts.tag("vip");
            }
            NewJob::new(kind, &serde_json::json!({ "i": i, "user": { "id": i % 3 } }), opts).unwrap()
        })
        .collect();
    t.client.enqueue_many(jobs).await.unwrap().into_iter().map(|e| e.id).collect()
}

fn ids(page: &skiplock::JobPage) -> Vec<i64> {
    page.jobs.iter().map(|j| j.id).collect()
}

#[tokio::test]
async fn the_search_filters_and_pages_hot_and_archived_jobs_alike() {
    let t = fresh().await;
    let mail = seed(&t, "mail", "send", 5).await;
    let media = seed(&t, "media", "resize", 5).await;
    // Two of the mail jobs finish: one cancelled, one discarded.
    t.client.cancel(&[mail[1]]).await.unwrap();
    t.client.jobs_discard(&[mail[2]]).await.unwrap();
    let c = &t.client;

    let all = c.jobs_search(&JobSearch::new()).await.unwrap();
    let mut want: Vec<i64> = mail.iter().chain(&media).copied().collect();
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids(&all), want, "newest first, hot and archived together");
    assert_eq!(all.older, None);

    let by = |s: JobSearch| async move { ids(&c.jobs_search(&s).await.unwrap()) };
    assert_eq!(by(JobSearch::new().state(JobState::Cancelled)).await, vec![mail[1]]);
    assert_eq!(by(JobSearch::new().state(JobState::Discarded).queue("mail")).await, vec![mail[2]]);
    assert_eq!(by(JobSearch::new().state(JobState::Available).queue("mail")).await, vec![mail[4], mail[3], mail[0]]);
    assert_eq!(by(JobSearch::new().kind("resize").id(media[2])).await, vec![media[2]]);
    assert_eq!(by(JobSearch::new().tag("vip")).await, vec![media[0], mail[0]]);
    let user1 = ArgsFilter::parse("user.id=1").unwrap();
    assert_eq!(by(JobSearch::new().args(user1)).await, vec![media[4], media[1], mail[4], mail[1]]);
    assert_eq!(by(JobSearch::new().args(ArgsFilter::parse("user.id").unwrap())).await.len(), 10);
    assert!(by(JobSearch::new().args(ArgsFilter::parse("nope").unwrap())).await.is_empty());
    assert_eq!(by(JobSearch::new().max_id(mail[4])).await, mail.iter().rev().copied().collect::<Vec<_>>());

    // Keyset pages of 3, forward and back.
    let first = c.jobs_search(&JobSearch::new().limit(3)).await.unwrap();
    assert_eq!(ids(&first), want[..3]);
    assert_eq!(first.newer, None);
    let second = c.jobs_search(&JobSearch::new().limit(3).before(first.older.unwrap())).await.unwrap();
    assert_eq!(ids(&second), want[3..6]);
    let back = c.jobs_search(&JobSearch::new().limit(3).after(second.newer.unwrap())).await.unwrap();
    assert_eq!(ids(&back), want[..3], "the page before, newest first again");
    assert_eq!(back.newer, None, "nothing newer than the first page");

    // Input that cannot be a filter is refused, naming it.
    let e = c.jobs_search(&JobSearch::new().queue("")).await.unwrap_err();
    assert!(e.to_string().starts_with("invalid queue"), "{e}");
    let e = c.jobs_search(&JobSearch::new().limit(0)).await.unwrap_err();
    assert!(e.to_string().starts_with("invalid limit"), "{e}");
}

#[tokio::test]
async fn a_bulk_action_acts_on_exactly_the_matching_jobs_in_batches() {
    let t = fresh().await;
    let resize = seed(&t, "media", "resize", 2_500).await;
    let send = seed(&t, "media", "send", 10).await;
    let c = &t.client;
    let search = JobSearch::new().kind("resize").state(JobState::Available);
    let count = c.jobs_count(&search, 100_000).await.unwrap();
    assert_eq!((count.n, count.capped), (2_500, false));
    assert_eq!(c.jobs_count(&search, 1_000).await.unwrap().n, 1_000);
    assert!(c.jobs_count(&search, 1_000).await.unwrap().capped);
    // A job enqueued after the count is left alone.
    let late = seed(&t, "media", "resize", 1).await[0];
    let done = c.jobs_bulk(&search.clone().max_id(count.max_id), BulkAction::Cancel, 100_000).await.unwrap();
    assert_eq!((done.matched, done.acted, done.skipped, done.batches, done.more), (2_500, 2_500, 0, 3, false));
    assert_eq!(t.count("jobs_archive", "state = 'cancelled' AND kind = 'resize'").await, 2_500);
    assert_eq!(c.job(late).await.unwrap().unwrap().state, JobState::Available);
    assert_eq!(t.count("jobs", "kind = 'send'").await, send.len() as i64);

    // A limit stops it, and says there is more.
    let done = c.jobs_bulk(&JobSearch::new().state(JobState::Cancelled), BulkAction::Retry, 1_200).await.unwrap();
    assert_eq!((done.matched, done.acted, done.more), (1_200, 1_200, true));
    assert_eq!(t.count("jobs", "kind = 'resize'").await, 1_201);
    let newest = c.job(resize[2_499]).await.unwrap().unwrap();
    assert_eq!(newest.state, JobState::Available, "newest first");
    assert_eq!(c.job(resize[0]).await.unwrap().unwrap().state, JobState::Cancelled);

    // Discard and delete, by id.
    assert_eq!(c.jobs_discard(&[send[0], send[1], 999_999]).await.unwrap(), vec![send[0], send[1]]);
    assert_eq!(c.job(send[0]).await.unwrap().unwrap().state, JobState::Discarded);
    assert_eq!(c.jobs_delete(&[send[0], send[2]]).await.unwrap(), vec![send[0], send[2]]);
    assert!(c.job(send[0]).await.unwrap().is_none() && c.job(send[2]).await.unwrap().is_none());
    let done = c.jobs_bulk(&JobSearch::new().kind("send"), BulkAction::Delete, 100).await.unwrap();
    assert_eq!((done.matched, done.acted), (8, 8));
    assert_eq!(t.count("jobs_archive", "kind = 'send'").await + t.count("jobs", "kind = 'send'").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_record_statistics_per_minute_and_the_leader_merges_them_once() {
    let t = fresh().await;
    seed(&t, "stats", "ok", 30).await;
    let fails: Vec<NewJob> = (0..10)
        .map(|i| NewJob::new("flaky", &i, EnqueueOptions::new().queue("stats").max_attempts(1)).unwrap())
        .collect();
    t.client.enqueue_many(fails).await.unwrap();
    let worker = Worker::builder(t.client.clone())
        .worker_id("stats-worker")
        .queue("stats", 8)
        .maintenance(false)
        .register_any(None, |_args, ctx| async move {
            if ctx.kind() == "flaky" { Err(skiplock::JobError::retry("boom")) } else { Ok(()) }
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    wait_finished(&mut events, 40).await;
    let since = Utc::now() - TimeDelta::minutes(5);
    let totals = |points: &[skiplock::StatsPoint]| {
        let n = |o| points.iter().filter(|p| p.outcome == o).map(|p| p.count).sum::<i64>();
        (n(StatsOutcome::Completed), n(StatsOutcome::Discarded))
    };
    // Written within a flush interval or two (bounded poll).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let points = t.client.stats_since(since, StatsResolution::Minute).await.unwrap();
        if totals(&points) == (30, 10) {
            let p = points.iter().find(|p| p.outcome == StatsOutcome::Completed).unwrap();
            assert_eq!((p.queue.as_str(), p.kind.as_str()), ("stats", "ok"));
            assert!(p.queue_time.percentile(0.95).is_some());
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "statistics not written: {points:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.shutdown().await;
    let rows = t.count("stats_minute", "worker = 'stats-worker'").await;
    assert!(rows >= 2, "the worker's own rows");

    // The leader merges them (all minutes, the worker being gone): counted
    // once, per minute and per hour alike.
    let m = Maintenance::builder(t.client.clone()).id("leader").build().unwrap();
    assert!(m.elect().await.unwrap());
    let r = m.stats_once(Some(Utc::now() + TimeDelta::minutes(2))).await.unwrap().unwrap();
    assert_eq!(r.merged, rows);
    assert_eq!(t.count("stats_minute", "worker <> ''").await, 0);
    let minutes = t.client.stats_since(since, StatsResolution::Minute).await.unwrap();
    assert_eq!(totals(&minutes), (30, 10));
    let hours = t.client.stats_since(since - TimeDelta::hours(1), StatsResolution::Hour).await.unwrap();
    assert_eq!(totals(&hours), (30, 10));
    // A second merge finds nothing.
    assert_eq!(m.stats_once(Some(Utc::now() + TimeDelta::minutes(2))).await.unwrap().unwrap().merged, 0);
}

#[tokio::test]
async fn the_leader_counts_the_queue_depth_for_page_views() {
    let t = fresh().await;
    assert_eq!(t.client.queue_depth().await.unwrap().counted_at, None, "never counted");
    seed(&t, "mail", "send", 3).await;
    t.client
        .enqueue_job(
            NewJob::new("send", &(), EnqueueOptions::new().queue("mail").delay(Duration::from_secs(3600))).unwrap(),
        )
        .await
        .unwrap();
    let m = Maintenance::builder(t.client.clone()).id("leader").build().unwrap();
    assert_eq!(m.stats_once(None).await.unwrap(), None, "only the leader counts");
    assert!(m.elect().await.unwrap());
    let r = m.stats_once(None).await.unwrap().unwrap();
    assert_eq!(r.depth_pairs, 2);
    let depth = t.client.queue_depth().await.unwrap();
    assert_eq!(depth.count("mail", JobState::Available), 3);
    assert_eq!(depth.count("mail", JobState::Scheduled), 1);
    assert!(depth.age().unwrap() < Duration::from_secs(5));
    let oldest = depth.rows.iter().find(|r| r.state == JobState::Available).unwrap().oldest_available_secs;
    assert!(oldest.unwrap() >= 0.0);
    // A queue that emptied leaves the count.
    t.client.jobs_bulk(&JobSearch::new().queue("mail"), BulkAction::Delete, 100).await.unwrap();
    m.stats_once(None).await.unwrap();
    let depth = t.client.queue_depth().await.unwrap();
    assert!(depth.rows.is_empty() && depth.counted_at.is_some(), "{depth:?}");
    let queues = t.client.queues_summary().await.unwrap();
    assert!(queues.is_empty(), "{queues:?}");
    t.client.queue_pause("mail").await.unwrap();
    let queues = t.client.queues_summary().await.unwrap();
    assert_eq!((queues[0].name.as_str(), queues[0].paused, queues[0].slots), ("mail", true, 0));
}

#[tokio::test]
async fn a_paused_periodic_job_skips_its_runs_and_run_now_enqueues_one() {
    let t = fresh().await;
    let m = Maintenance::builder(t.client.clone())
        .id("leader")
        .periodic(
            PeriodicJob::every("hourly", Duration::from_secs(3600))
                .new_job(NewJob::new("report", &(), EnqueueOptions::new()).unwrap()),
        )
        .build()
        .unwrap();
    assert!(m.elect().await.unwrap());
    assert!(m.periodic_once().await.unwrap().unwrap().enqueued.is_empty(), "first run in an hour");
    let c = &t.client;
    assert!(c.periodic_run_now("hourly").await.unwrap());
    let report = m.periodic_once().await.unwrap().unwrap();
    assert_eq!(report.enqueued.len(), 1, "run now: one run");
    assert!(m.periodic_once().await.unwrap().unwrap().enqueued.is_empty(), "and only one");
    let entry = c.periodic_entries().await.unwrap().remove(0);
    assert!(entry.next_run_at > entry.db_now + TimeDelta::minutes(59), "back on its schedule");

    assert!(c.periodic_pause("hourly").await.unwrap());
    assert!(!c.periodic_run_now("hourly").await.unwrap(), "a paused job does not run now");
    assert!(c.periodic_entries().await.unwrap()[0].paused);
    // Its next run falls due while paused: skipped, and the schedule moves on.
    t.sql().await.execute("UPDATE skiplock.periodic SET next_run_at = now() - interval '1 second'", &[]).await.unwrap();
    assert!(m.periodic_once().await.unwrap().unwrap().enqueued.is_empty());
    let entry = c.periodic_entries().await.unwrap().remove(0);
    assert!(entry.next_run_at > entry.db_now, "moved on past the skipped run");
    assert!(c.periodic_resume("hourly").await.unwrap());
    assert!(m.periodic_once().await.unwrap().unwrap().enqueued.is_empty(), "no back-fill on resume");
    assert_eq!(t.count("jobs", "kind = 'report'").await, 1);
    assert!(!c.periodic_pause("nope").await.unwrap());
}
