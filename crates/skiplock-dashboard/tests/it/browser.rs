//! A real headless Chromium (Debian's `chromium` and `chromium-driver`,
//! through WebDriver) against a dashboard served on loopback over a seeded
//! database: what an operator sees and does. The overview's and a job
//! page's screenshots (`docs/images/`) are taken here.

use std::time::Duration;

use fantoccini::Locator;
use skiplock::{EnqueueOptions, Event, JobError, JobState, NewJob, StatsResolution, Worker, WorkerHandle};
use skiplock_dashboard::{Access, Dashboard};

use crate::support::{Browser, TestDb, fresh, serve, until};

fn opts(queue: &str) -> EnqueueOptions {
    EnqueueOptions::new().queue(queue)
}

async fn enqueue(t: &TestDb, kind: &str, o: EnqueueOptions, args: serde_json::Value) -> i64 {
    t.client.enqueue_job(NewJob::new(kind, &args, o).unwrap()).await.unwrap().id
}

/// A worker on `queues` (maintenance on: it leads, so the queue depth is
/// counted); a sixth of the `work` queue's jobs fail their first attempt.
fn worker(t: &TestDb, queues: &[&str]) -> (WorkerHandle, tokio::sync::broadcast::Receiver<Event>) {
    let mut b = Worker::builder(t.client.clone()).worker_id("web-1").scheduler_interval(Duration::from_millis(100));
    for q in queues {
        b = b.queue(*q, 4);
    }
    let w = b
        .register_any(None, |args, ctx| async move {
            let n =
                serde_json::from_str::<serde_json::Value>(args.get()).ok().and_then(|v| v["n"].as_i64()).unwrap_or(1);
            if n % 6 == 0 && ctx.attempt() == 1 {
                return Err(JobError::retry_after(format!("job {n}: upstream timed out"), Duration::from_millis(50)));
            }
            Ok(())
        })
        .build()
        .unwrap();
    let events = w.subscribe();
    (w.start(), events)
}

async fn wait_event(rx: &mut tokio::sync::broadcast::Receiver<Event>, pred: impl Fn(&Event) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => panic!("events ended: {e}"),
            Err(_) => panic!("no such event within 20s"),
        }
    }
}

/// Waits for the confirmation an action answers with.
async fn toast(b: &Browser, contains: &str) {
    until(15, &format!("a toast saying {contains:?}"), || async {
        b.text("[data-toast]").await.filter(|t| t.contains(contains)).map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_the_right_counts_and_a_live_count_changes_without_reload() {
    let t = fresh().await;
    for i in 0..7 {
        enqueue(&t, "send_email", opts("mail"), serde_json::json!({ "to": format!("user{i}@example.com") })).await;
    }
    for _ in 0..2 {
        enqueue(&t, "send_email", opts("mail").delay(Duration::from_secs(3600)), serde_json::json!({})).await;
    }
    for i in 0..3 {
        enqueue(&t, "thumbnail", opts("media"), serde_json::json!({ "image": i })).await;
    }
    let work: Vec<NewJob> =
        (1..=60).map(|n| NewJob::new("report", &serde_json::json!({ "n": n }), opts("work")).unwrap()).collect();
    t.client.enqueue_many(work).await.unwrap();
    let (handle, mut events) = worker(&t, &["work"]);
    let mut finished = 0;
    while finished < 60 {
        wait_event(&mut events, |e| matches!(e, Event::Finished { state, .. } if state.is_final())).await;
        finished += 1;
    }
    // The leader's count and the worker's statistics are written (bounded polls).
    until(20, "the depth count", || async {
        let d = t.client.queue_depth().await.unwrap();
        (d.count("mail", JobState::Available) == 7 && d.count("work", JobState::Available) == 0).then_some(())
    })
    .await;
    until(20, "the statistics", || async {
        let since = chrono::Utc::now() - chrono::TimeDelta::minutes(10);
        let points = t.client.stats_since(since, StatsResolution::Minute).await.unwrap();
        (points.iter().map(|p| p.count).sum::<i64>() >= 70).then_some(())
    })
    .await;

    // An hour and a day of history for the mail and media queues, as the
    // leader would have merged it, so the charts have something to draw.
    t.sql()
        .await
        .batch_execute(
            "INSERT INTO skiplock.stats_minute (minute, worker, queue, kind, outcome, n, queue_ms)
             SELECT to_timestamp(floor(extract(epoch FROM now()) / 60) * 60) - m * interval '1 minute', '', q, k, o,
                    CASE o WHEN 'completed' THEN 40 + (20 * sin(m / 6.0))::int + (m % 7) * 3 ELSE 1 + m % 4 END,
                    array_fill(0::bigint, ARRAY[20 + m % 9]) || ARRAY[(30 + m)::bigint, (10 + m % 5)::bigint]
             FROM generate_series(2, 59) m, (VALUES ('mail', 'send_email'), ('media', 'thumbnail')) qk(q, k),
                  (VALUES ('completed'), ('retried')) oo(o);
             INSERT INTO skiplock.stats_hour (hour, queue, kind, outcome, n, queue_ms)
             SELECT to_timestamp(floor(extract(epoch FROM now()) / 3600) * 3600) - h * interval '1 hour', q, k, o,
                    CASE o WHEN 'completed' THEN 2400 + (900 * sin(h / 3.0))::int ELSE 40 + h * 3 END, '{}'
             FROM generate_series(1, 23) h, (VALUES ('mail', 'send_email'), ('media', 'thumbnail')) qk(q, k),
                  (VALUES ('completed'), ('retried')) oo(o)",
        )
        .await
        .unwrap();

    let web = serve(Dashboard::new(t.client.clone()).live_interval(Duration::from_millis(300)).router()).await;
    let b = Browser::start(1280, 900).await;
    b.c.goto(&web.url("/")).await.unwrap();
    b.wait_text("[data-figure=available]", "10").await;
    b.wait_text("[data-figure=scheduled]", "2").await;
    b.wait_text("tr[data-queue=mail] [data-count=available]", "7").await;
    b.wait_text("tr[data-queue=media] [data-count=available]", "3").await;
    b.wait_text("tr[data-queue=work] [data-count=completed]", "60").await;
    b.wait_text("[data-figure=workers]", "1").await;
    b.screenshot("overview").await;

    // A job enqueued now shows up without a reload.
    b.c.execute("window.__same_page = 'yes'; return true;", vec![]).await.unwrap();
    enqueue(&t, "send_email", opts("mail"), serde_json::json!({})).await;
    b.wait_text("[data-figure=available]", "11").await;
    b.wait_text("tr[data-queue=mail] [data-count=available]", "8").await;
    let same = b.c.execute("return window.__same_page || 'reloaded';", vec![]).await.unwrap();
    assert_eq!(same, "yes", "updated in place, not reloaded");

    // And on a phone.
    b.c.set_window_size(390, 844).await.unwrap();
    b.screenshot("overview-phone").await;
    b.quit().await;
    handle.shutdown().await;
}

#[tokio::test]
async fn retrying_a_discarded_job_from_its_page_makes_it_available() {
    let t = fresh().await;
    let id = enqueue(
        &t,
        "send_invoice",
        opts("billing").max_attempts(1).tag("finance"),
        serde_json::json!({ "invoice": 1042, "customer": { "email": "ada@example.com", "plan": "pro" } }),
    )
    .await;
    let claimed = t.client.claim("billing", 1, Duration::from_secs(30), "web-1").await.unwrap();
    let error = "smtp: 451 4.7.1 greylisted, try again later\n  at send_invoice (billing/mail.rs:88)";
    t.client.fail(&[(claimed[0].lease, error.to_owned(), Duration::from_secs(1))]).await.unwrap();
    assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Discarded);

    let web = serve(Dashboard::new(t.client.clone()).router()).await;
    let b = Browser::start(1280, 900).await;
    b.c.goto(&web.url(&format!("/jobs/{id}"))).await.unwrap();
    b.wait_text("[data-job-state]", "discarded").await;
    assert!(b.text("pre.error").await.unwrap().contains("greylisted"));
    b.screenshot("job").await;
    b.c.find(Locator::Css("button[value=retry]")).await.unwrap().click().await.unwrap();
    toast(&b, "Retried 1 job").await;
    b.wait_text("[data-job-state]", "available").await;
    assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Available);
    b.quit().await;
}

#[tokio::test]
async fn a_bulk_cancel_by_filter_cancels_exactly_the_matching_jobs() {
    let t = fresh().await;
    let mut resize = Vec::new();
    for i in 0..5 {
        resize.push(enqueue(&t, "resize", opts("media"), serde_json::json!({ "i": i })).await);
    }
    let mut send = Vec::new();
    for i in 0..4 {
        send.push(enqueue(&t, "send", opts("media"), serde_json::json!({ "i": i })).await);
    }
    let web = serve(Dashboard::new(t.client.clone()).router()).await;
    let b = Browser::start(1280, 900).await;
    b.c.goto(&web.url("/jobs?kind=resize")).await.unwrap();
    b.c.find(Locator::Css("a[data-bulk=cancel]")).await.unwrap().click().await.unwrap();
    b.wait_text("#question", "Cancel 5 matching jobs?").await;
    b.c.find(Locator::Css("button[data-confirm-button]")).await.unwrap().click().await.unwrap();
    toast(&b, "Cancelled 5 of 5 jobs matching kind resize").await;
    for id in &resize {
        assert_eq!(t.client.job(*id).await.unwrap().unwrap().state, JobState::Cancelled, "job {id}");
    }
    for id in &send {
        assert_eq!(t.client.job(*id).await.unwrap().unwrap().state, JobState::Available, "job {id}");
    }
    b.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_a_queue_from_the_queues_page_stops_claims() {
    let t = fresh().await;
    let (handle, mut events) = worker(&t, &["pausable", "control"]);
    let first = enqueue(&t, "report", opts("pausable"), serde_json::json!({ "n": 1 })).await;
    wait_event(&mut events, |e| matches!(e, Event::Finished { id, .. } if *id == first)).await;
    until(20, "the queue listed", || async {
        t.client.queues_summary().await.unwrap().iter().any(|q| q.name == "pausable").then_some(())
    })
    .await;

    let web = serve(Dashboard::new(t.client.clone()).router()).await;
    let b = Browser::start(1280, 900).await;
    b.c.goto(&web.url("/queues")).await.unwrap();
    b.c.find(Locator::Css("button[aria-label='Pause queue pausable']")).await.unwrap().click().await.unwrap();
    toast(&b, "Paused queue pausable").await;
    b.wait_text("tr[data-queue=pausable] [data-paused]", "paused").await;

    // Jobs keep arriving; none is claimed, while the same worker goes on
    // with its other queue.
    let held = enqueue(&t, "report", opts("pausable"), serde_json::json!({ "n": 1 })).await;
    let control = enqueue(&t, "report", opts("control"), serde_json::json!({ "n": 1 })).await;
    wait_event(&mut events, |e| matches!(e, Event::Finished { id, .. } if *id == control)).await;
    assert_eq!(t.client.job(held).await.unwrap().unwrap().state, JobState::Available);
    assert!(t.client.claim("pausable", 10, Duration::from_secs(30), "probe").await.unwrap().is_empty());

    b.c.find(Locator::Css("button[aria-label='Resume queue pausable']")).await.unwrap().click().await.unwrap();
    toast(&b, "Resumed queue pausable").await;
    wait_event(&mut events, |e| matches!(e, Event::Finished { id, .. } if *id == held)).await;
    b.quit().await;
    handle.shutdown().await;
}

#[tokio::test]
async fn read_only_mode_hides_and_refuses_actions() {
    let t = fresh().await;
    let id = enqueue(&t, "send", opts("mail"), serde_json::json!({})).await;
    t.client.jobs_discard(&[id]).await.unwrap();
    let web = serve(Dashboard::new(t.client.clone()).access(Access::ReadOnly).router()).await;
    let b = Browser::start(1280, 900).await;
    b.c.goto(&web.url(&format!("/jobs/{id}"))).await.unwrap();
    b.wait_text("[data-job-state]", "discarded").await;
    assert!(b.c.find_all(Locator::Css("main form")).await.unwrap().is_empty(), "no action offered");
    b.c.goto(&web.url("/queues")).await.unwrap();
    assert!(b.c.find_all(Locator::Css("main button")).await.unwrap().is_empty(), "no pause offered");
    assert!(b.text("footer").await.unwrap().contains("read-only"));
    // A retry forged from the page itself, with this browser's CSRF token:
    // refused by the access mode.
    b.c.goto(&web.url(&format!("/jobs/{id}"))).await.unwrap();
    let forge = format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/jobs/act';
         for (const [k, v] of [['csrf', document.querySelector('meta[name=csrf-token]').content],
                               ['ids', '{id}'], ['action', 'retry']]) {{
             const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
         }}
         document.body.appendChild(f); f.submit(); return true;"
    );
    b.c.execute(&forge, vec![]).await.unwrap();
    until(15, "the refusal", || async {
        b.text("[data-error]").await.filter(|t| t.contains("does not allow the retry action")).map(|_| ())
    })
    .await;
    assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Discarded);
    b.quit().await;
}

#[tokio::test]
async fn a_request_without_the_token_and_a_forged_post_are_refused() {
    let t = fresh().await;
    enqueue(&t, "send", opts("mail"), serde_json::json!({})).await;
    let web = serve(Dashboard::new(t.client.clone()).token("correct horse battery").router()).await;
    let b = Browser::start(1280, 900).await;
    b.c.goto(&web.url("/jobs")).await.unwrap();
    until(15, "the login form", || async { b.c.find(Locator::Css("input[name=token]")).await.ok() }).await;
    assert!(b.c.find_all(Locator::Css("tr[data-job]")).await.unwrap().is_empty(), "no job shown");
    let sign_in = |token: &'static str| async {
        let field = b.c.find(Locator::Css("input[name=token]")).await.unwrap();
        field.send_keys(token).await.unwrap();
        b.c.find(Locator::Css("form button[type=submit]")).await.unwrap().click().await.unwrap();
    };
    sign_in("wrong").await;
    until(15, "the wrong token refused", || async {
        b.text("[role=alert]").await.filter(|t| t.contains("not the one")).map(|_| ())
    })
    .await;
    sign_in("correct horse battery").await;
    until(15, "the jobs page", || async { b.c.find(Locator::Css("tr[data-job]")).await.ok() }).await;

    // Signed in, the browser is sent a form from another origin (another
    // port) that posts to the dashboard: refused, nothing done.
    let target = web.url("/queues/act");
    let evil = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move {
            axum::response::Html(format!(
                "<!doctype html><form id=f method=post action='{target}'>
                 <input name=queue value=mail><input name=action value=pause></form>
                 <script>document.getElementById('f').submit()</script>"
            ))
        }),
    );
    let evil = serve(evil).await;
    b.c.goto(&evil.url("/")).await.unwrap();
    until(15, "the forged post refused", || async {
        b.text("[data-error]").await.filter(|t| t.contains("another site")).map(|_| ())
    })
    .await;
    let paused = t.client.queues_summary().await.unwrap().iter().any(|q| q.name == "mail" && q.paused);
    assert!(!paused, "the forged post did nothing");
    b.quit().await;
}
