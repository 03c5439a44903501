//! The router without a socket (tower's `oneshot`): every route, auth,
//! CSRF, access modes, escaping, nesting, confirmations.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use skiplock::{EnqueueOptions, JobState, NewJob};
use skiplock_dashboard::{Access, Action, Dashboard};
use tower::ServiceExt as _;

use crate::support::{TestDb, fresh};

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap().to_owned())
    }
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

async fn call(app: &Router, req: Request<Body>) -> Answer {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    Answer { status, headers, body }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).header(header::HOST, "dash.test").body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::HOST, "dash.test")
        .header(header::COOKIE, cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .unwrap()
}

/// A browser's first visit: the CSRF cookie and the token the forms carry.
async fn session(app: &Router, path: &str) -> (String, String) {
    let a = call(app, get(path)).await;
    let cookie = a.cookie("skiplock_csrf").expect("a CSRF cookie on the first visit");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    assert!(a.body.contains(&format!("content=\"{token}\"")), "the page carries the token");
    (cookie, token)
}

async fn job(t: &TestDb, kind: &str, queue: &str, args: serde_json::Value) -> i64 {
    t.client.enqueue_job(NewJob::new(kind, &args, EnqueueOptions::new().queue(queue)).unwrap()).await.unwrap().id
}

/// A job of queue `flaky` that failed its only attempt with `error`:
/// discarded, in the archive.
async fn failed(t: &TestDb, error: &str) -> i64 {
    let queue = "flaky";
    let opts = EnqueueOptions::new().queue(queue).max_attempts(1);
    let id = t.client.enqueue_job(NewJob::new("flaky", &(), opts).unwrap()).await.unwrap().id;
    let claimed = t.client.claim(queue, 1, Duration::from_secs(30), "test-worker").await.unwrap();
    t.client.fail(&[(claimed[0].lease, error.to_owned(), Duration::from_secs(1))]).await.unwrap();
    assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Discarded);
    id
}

#[tokio::test]
async fn every_route_answers_over_a_seeded_database() {
    let t = fresh().await;
    let id = job(&t, "send", "mail", serde_json::json!({"to": "ada@example.com"})).await;
    let gone = failed(&t, "smtp said no").await;
    let app = Dashboard::new(t.client.clone()).router();
    for path in [
        "/",
        "/?queue=mail",
        "/jobs",
        "/jobs?state=discarded&queue=mail",
        "/jobs?kind=send&args=to%3Dada%40example.com",
        "/jobs?state=final&tag=x&id=1",
        &format!("/jobs/{id}"),
        &format!("/jobs/{gone}"),
        "/jobs/bulk?kind=send&action=cancel",
        "/queues",
        "/periodic",
        "/workers",
        "/metrics",
        "/login",
        "/assets/app.css",
        "/assets/app.js",
    ] {
        let a = call(&app, get(path)).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    // The health findings (`Client::health`): nobody leads this database.
    let workers = call(&app, get("/workers")).await.body;
    assert!(workers.contains("data-check=\"leader\"") && workers.contains("What to do: start a worker"), "{workers}");
    let page = call(&app, get(&format!("/jobs/{gone}"))).await.body;
    assert!(page.contains("smtp said no") && page.contains("Attempt 1"), "the attempt's error");
    let list = call(&app, get("/jobs?state=discarded")).await.body;
    assert!(list.contains(&format!("data-job=\"{gone}\"")) && !list.contains(&format!("data-job=\"{id}\"")));
    // Not found, bad filters, fragments.
    assert_eq!(call(&app, get("/nope")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, get("/jobs/99999999")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(call(&app, get("/jobs/abc")).await.status, StatusCode::BAD_REQUEST);
    let bad = call(&app, get("/jobs?state=finished")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("invalid state") && bad.body.contains("<form"), "the page, with the error");
    let frag = Request::get("/").header("x-skiplock-fragment", "overview").body(Body::empty()).unwrap();
    let frag = call(&app, frag).await;
    assert!(frag.body.contains("data-figure=\"available\"") && !frag.body.contains("<html"), "only the fragment");
    let metrics = call(&app, get("/metrics")).await;
    assert!(metrics.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain"));
    // The live stream is a stream of server-sent events.
    let live = app.clone().oneshot(get("/live")).await.unwrap();
    assert_eq!(live.headers()[header::CONTENT_TYPE], "text/event-stream");
}

#[tokio::test]
async fn nothing_a_user_types_reaches_the_page_unescaped() {
    let t = fresh().await;
    let evil = "<script>alert(1)</script>";
    let id = job(&t, "send", "mail", serde_json::json!({ "to": evil, "note": "\"quoted\" & 'single'" })).await;
    let failed = failed(&t, &format!("boom {evil}")).await;
    let app = Dashboard::new(t.client.clone()).router();
    for path in [
        format!("/jobs/{id}"),
        format!("/jobs/{failed}"),
        "/jobs".to_owned(),
        "/jobs?queue=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
        "/jobs?args=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E%3D1".to_owned(),
        "/jobs/bulk?args=to%3D%3Cscript%3E&action=cancel".to_owned(),
        "/login?next=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
    ] {
        let a = call(&app, get(&path)).await;
        assert!(!a.body.contains("<script>alert"), "{path} has raw markup:\n{}", a.body);
    }
    let page = call(&app, get(&format!("/jobs/{id}"))).await.body;
    assert!(page.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "shown, escaped:\n{page}");
    // A filter with SQL in it is only a value.
    let a = call(&app, get("/jobs?kind=x%27%3B%20DROP%20TABLE%20skiplock.jobs%3B--")).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "not a valid kind");
    let a = call(&app, get("/jobs?args=to%3D%27%3B%20DELETE%20FROM%20skiplock.jobs%3B--")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(t.client.job(id).await.unwrap().is_some(), "the jobs are still there");
}

#[tokio::test]
async fn a_token_guards_every_route_and_the_login_form_sets_a_cookie() {
    let t = fresh().await;
    let app = Dashboard::new(t.client.clone()).token("s3cret-token").router();
    for path in ["/", "/jobs", "/jobs/1", "/queues", "/periodic", "/workers", "/live", "/metrics"] {
        let a = call(&app, get(path)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let login = call(&app, get("/jobs")).await;
    assert!(login.body.contains("name=\"token\"") && login.body.contains("value=\"/jobs\""), "the login form");
    assert_eq!(call(&app, get("/assets/app.css")).await.status, StatusCode::OK, "assets are open");
    let bearer = |t: &str| {
        Request::get("/").header(header::HOST, "dash.test").header(header::AUTHORIZATION, format!("Bearer {t}"))
    };
    assert_eq!(call(&app, bearer("s3cret-token").body(Body::empty()).unwrap()).await.status, StatusCode::OK);
    assert_eq!(call(&app, bearer("s3cret-tokeN").body(Body::empty()).unwrap()).await.status, StatusCode::UNAUTHORIZED);

    let (csrf_cookie, csrf) = {
        let a = call(&app, get("/login")).await;
        let c = a.cookie("skiplock_csrf").unwrap();
        let token = c.split_once('=').unwrap().1.to_owned();
        (c, token)
    };
    let wrong = call(&app, post("/login", &csrf_cookie, &format!("csrf={csrf}&token=nope&next=/jobs"))).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.cookie("skiplock_session").is_none());
    let right = call(&app, post("/login", &csrf_cookie, &format!("csrf={csrf}&token=s3cret-token&next=/jobs"))).await;
    assert_eq!(right.status, StatusCode::SEE_OTHER);
    assert_eq!(right.location(), "/jobs");
    let session = right.cookie("skiplock_session").unwrap();
    assert!(!session.contains("s3cret-token"), "the cookie holds a digest, not the token");
    let set =
        right.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(
        set.iter().any(|c| c.starts_with("skiplock_session=") && c.contains("HttpOnly") && c.contains("SameSite=Lax"))
    );
    let with = Request::get("/jobs").header(header::COOKIE, &session).body(Body::empty()).unwrap();
    assert_eq!(call(&app, with).await.status, StatusCode::OK);
    // An open redirect is not on offer.
    let away =
        call(&app, post("/login", &csrf_cookie, &format!("csrf={csrf}&token=s3cret-token&next=//evil.example/"))).await;
    assert_eq!(away.location(), "/");
}

#[tokio::test]
async fn basic_auth_prompts_and_admits() {
    let t = fresh().await;
    let app = Dashboard::new(t.client.clone()).basic_auth("ops", "pa55").router();
    let a = call(&app, get("/")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.headers[header::WWW_AUTHENTICATE], "Basic realm=\"skiplock\"");
    let with = |creds: &str| {
        use base64::Engine as _;
        let v = base64::engine::general_purpose::STANDARD.encode(creds);
        Request::get("/").header(header::AUTHORIZATION, format!("Basic {v}")).body(Body::empty()).unwrap()
    };
    assert_eq!(call(&app, with("ops:pa55")).await.status, StatusCode::OK);
    assert_eq!(call(&app, with("ops:pa56")).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_or_from_another_site_is_refused() {
    let t = fresh().await;
    job(&t, "send", "mail", serde_json::json!({})).await;
    let app = Dashboard::new(t.client.clone()).router();
    let paused = || async { t.client.queues_summary().await.unwrap().iter().any(|q| q.name == "mail" && q.paused) };
    let (cookie, csrf) = session(&app, "/queues").await;
    let form = format!("csrf={csrf}&queue=mail&action=pause");

    let no_token = call(&app, post("/queues/act", &cookie, "queue=mail&action=pause")).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    let wrong =
        call(&app, post("/queues/act", &cookie, &format!("csrf={}&queue=mail&action=pause", "0".repeat(64)))).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let no_cookie = call(&app, post("/queues/act", "", &form)).await;
    assert_eq!(no_cookie.status, StatusCode::FORBIDDEN);
    let mut cross = post("/queues/act", &cookie, &form);
    cross.headers_mut().insert(header::ORIGIN, "http://evil.example".parse().unwrap());
    assert_eq!(call(&app, cross).await.status, StatusCode::FORBIDDEN);
    let mut cross = post("/queues/act", &cookie, &form);
    cross.headers_mut().insert("sec-fetch-site", "same-site".parse().unwrap());
    assert_eq!(call(&app, cross).await.status, StatusCode::FORBIDDEN);
    assert!(!paused().await, "nothing was done");

    let mut same = post("/queues/act", &cookie, &format!("{form}&return=/queues"));
    same.headers_mut().insert(header::ORIGIN, "http://dash.test".parse().unwrap());
    same.headers_mut().insert("sec-fetch-site", "same-origin".parse().unwrap());
    let done = call(&app, same).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert!(paused().await);

    // A script with the bearer token needs no CSRF token (no browser sends one by itself).
    let app = Dashboard::new(t.client.clone()).token("tok").router();
    let req = Request::post("/queues/act")
        .header(header::AUTHORIZATION, "Bearer tok")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("queue=mail&action=resume"))
        .unwrap();
    assert_eq!(call(&app, req).await.status, StatusCode::SEE_OTHER);
    assert!(!paused().await);
}

#[tokio::test]
async fn read_only_and_listed_access_hide_and_refuse_actions() {
    let t = fresh().await;
    let gone = failed(&t, "no").await;
    let waiting = job(&t, "send", "mail", serde_json::json!({})).await;
    let app = Dashboard::new(t.client.clone()).access(Access::ReadOnly).router();
    let (cookie, csrf) = session(&app, &format!("/jobs/{gone}")).await;
    let page = call(&app, get(&format!("/jobs/{gone}"))).await.body;
    assert!(!page.contains("Retry now") && !page.contains("/jobs/act"), "no action shown");
    assert!(!call(&app, get("/jobs")).await.body.contains("all…"), "no bulk action shown");
    assert!(!call(&app, get("/queues")).await.body.contains("action"), "no pause shown");
    for (path, form) in [
        ("/jobs/act", format!("csrf={csrf}&ids={gone}&action=retry")),
        ("/jobs/act", format!("csrf={csrf}&ids={waiting}&action=delete&confirmed=1")),
        ("/jobs/bulk", format!("csrf={csrf}&action=cancel&max_id=999999")),
        ("/queues/act", format!("csrf={csrf}&queue=mail&action=pause")),
        ("/periodic/act", format!("csrf={csrf}&name=x&action=run")),
    ] {
        let a = call(&app, post(path, &cookie, &form)).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path} {form}");
    }
    assert_eq!(call(&app, get("/jobs/bulk?action=cancel")).await.status, StatusCode::FORBIDDEN);
    assert_eq!(t.client.job(gone).await.unwrap().unwrap().state, JobState::Discarded);
    assert!(t.client.job(waiting).await.unwrap().is_some());

    // Only retry: retry shows and works, delete neither.
    let app = Dashboard::new(t.client.clone()).access(Access::Only(vec![Action::Retry])).router();
    let (cookie, csrf) = session(&app, "/jobs").await;
    let page = call(&app, get(&format!("/jobs/{gone}"))).await.body;
    assert!(page.contains("Retry now") && !page.contains(">Delete<"));
    let a =
        call(&app, post("/jobs/act", &cookie, &format!("csrf={csrf}&ids={waiting}&action=delete&confirmed=1"))).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = call(&app, post("/jobs/act", &cookie, &format!("csrf={csrf}&ids={gone}&action=retry"))).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(t.client.job(gone).await.unwrap().unwrap().state, JobState::Available);
}

#[tokio::test]
async fn actions_ask_first_when_destructive_and_confirm_what_they_did() {
    let t = fresh().await;
    let id = job(&t, "send", "mail", serde_json::json!({})).await;
    let app = Dashboard::new(t.client.clone()).router();
    let (cookie, csrf) = session(&app, "/jobs").await;
    // Without confirmation: a page that asks, and nothing done.
    let ask =
        call(&app, post("/jobs/act", &cookie, &format!("csrf={csrf}&ids={id}&action=cancel&return=/jobs/{id}"))).await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask.body.contains(&format!("Cancel job {id}?")) && ask.body.contains("name=\"confirmed\""));
    assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Available);
    // Confirmed: done, and back to the job with a confirmation.
    let form = format!("csrf={csrf}&ids={id}&action=cancel&return=/jobs/{id}&confirmed=1");
    let done = call(&app, post("/jobs/act", &cookie, &form)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.location(), format!("/jobs/{id}"));
    assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Cancelled);
    let flash = done.cookie("skiplock_flash").unwrap();
    let next =
        Request::get(done.location()).header(header::COOKIE, format!("{cookie}; {flash}")).body(Body::empty()).unwrap();
    let shown = call(&app, next).await;
    assert!(shown.body.contains("Cancelled 1 job."), "{}", shown.body);
    let cleared = shown.headers.get_all(header::SET_COOKIE).iter().any(|v| {
        let v = v.to_str().unwrap();
        v.starts_with("skiplock_flash=;") && v.contains("Max-Age=0")
    });
    assert!(cleared, "shown once");
    // A return address outside the dashboard is not followed.
    let id2 = job(&t, "send", "mail", serde_json::json!({})).await;
    let away = call(
        &app,
        post("/jobs/act", &cookie, &format!("csrf={csrf}&ids={id2}&action=retry&return=https://evil.example/")),
    )
    .await;
    assert_eq!(away.location(), "/");
}

#[tokio::test]
async fn a_bulk_action_by_filter_shows_its_count_then_acts_on_exactly_those_jobs() {
    let t = fresh().await;
    let mut resize = Vec::new();
    for i in 0..3 {
        resize.push(job(&t, "resize", "media", serde_json::json!({ "i": i })).await);
    }
    let other = job(&t, "send", "media", serde_json::json!({})).await;
    let app = Dashboard::new(t.client.clone()).router();
    let (cookie, csrf) = session(&app, "/jobs").await;
    let ask = call(&app, get("/jobs/bulk?kind=resize&state=available&action=cancel")).await;
    assert!(ask.body.contains("Cancel 3 matching jobs?"), "{}", ask.body);
    let max_id = ask.body.split("name=\"max_id\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let late = job(&t, "resize", "media", serde_json::json!({})).await;
    let form = format!("csrf={csrf}&kind=resize&state=available&action=cancel&max_id={max_id}&confirmed=1");
    let done = call(&app, post("/jobs/bulk", &cookie, &form)).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert!(done.location().starts_with("/jobs?"));
    for id in &resize {
        assert_eq!(t.client.job(*id).await.unwrap().unwrap().state, JobState::Cancelled);
    }
    assert_eq!(t.client.job(other).await.unwrap().unwrap().state, JobState::Available);
    assert_eq!(t.client.job(late).await.unwrap().unwrap().state, JobState::Available, "enqueued after the count");
}

#[tokio::test]
async fn the_router_nests_under_any_path() {
    let t = fresh().await;
    let id = job(&t, "send", "mail", serde_json::json!({})).await;
    let app = Router::new().nest("/admin/queue", Dashboard::new(t.client.clone()).router());
    let a = call(&app, get("/admin/queue/jobs")).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.contains(&format!("href=\"/admin/queue/jobs/{id}\"")) && a.body.contains("/admin/queue/assets/app.css")
    );
    let set = a.headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert!(set.iter().any(|c| c.contains("Path=/admin/queue;")), "{set:?}");
    assert!(a.body.contains("href=\"/admin/queue\""), "the overview's link is the path itself");
    assert_eq!(call(&app, get("/admin/queue")).await.status, StatusCode::OK);
    let (cookie, csrf) = session(&app, "/admin/queue/jobs").await;
    let done = call(
        &app,
        post("/admin/queue/jobs/act", &cookie, &format!("csrf={csrf}&ids={id}&action=retry&return=/admin/queue/jobs")),
    )
    .await;
    assert_eq!(done.location(), "/admin/queue/jobs");
    assert_eq!(call(&app, get("/admin/queue/assets/app.js")).await.status, StatusCode::OK);
}

/// `/metrics` is Prometheus text (the exporter's, parsed here as Prometheus
/// parses it) with the queue depth the leader counted, by queue and state;
/// a queue that emptied reads 0, not its last count.
#[tokio::test]
async fn metrics_serve_the_leader_s_depth_count_by_queue_and_state() {
    let t = fresh().await;
    for i in 0..3 {
        job(&t, "send", "mail", serde_json::json!({ "i": i })).await;
    }
    let m = skiplock::Maintenance::builder(t.client.clone()).id("metrics-leader").build().unwrap();
    assert!(m.elect().await.unwrap());
    m.stats_once(None).await.unwrap().expect("the leader counted");
    let app = Dashboard::new(t.client.clone()).router();
    let scrape = |body: String| {
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format")
    };
    let value = |s: &prometheus_parse::Scrape, name: &str, queue: &str, state: Option<&str>| {
        s.samples
            .iter()
            .find(|x| {
                x.metric == name
                    && x.labels.get("queue") == Some(queue)
                    && state.is_none_or(|st| x.labels.get("state") == Some(st))
            })
            .map(|x| match x.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name}: {other:?}"),
            })
    };
    let s = scrape(call(&app, get("/metrics")).await.body);
    assert_eq!(value(&s, "skiplock_queue_jobs", "mail", Some("available")), Some(3.0), "{:?}", s.samples);
    assert!(value(&s, "skiplock_queue_oldest_available_seconds", "mail", None).is_some_and(|v| v >= 0.0));
    assert!(s.samples.iter().any(|x| x.metric == "skiplock_queue_depth_age_seconds"));
    // The queue empties; the next count says 0.
    t.client
        .cancel(
            &t.client
                .jobs_list(&skiplock::JobFilter::new().queue("mail"))
                .await
                .unwrap()
                .iter()
                .map(|j| j.id)
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();
    m.stats_once(None).await.unwrap().expect("counted again");
    let s = scrape(call(&app, get("/metrics")).await.body);
    assert_eq!(value(&s, "skiplock_queue_jobs", "mail", Some("available")), Some(0.0), "{:?}", s.samples);
}
