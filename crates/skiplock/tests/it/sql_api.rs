//! The SQL API (`skiplock.enqueue`, `enqueue_many`, `cancel`, `retry`,
//! `pause`, `resume`): jobs enqueued from SQL run on a Rust worker, from a
//! trigger too; bad input fails with the field named; a paused queue is not
//! claimed from by a running worker until it is resumed.

use std::time::Duration;

use skiplock::{EnqueueOptions, Event, JobState, NewJob, WakeSource, Worker};

use crate::support::{TestDb, fresh, fresh_with, wait_completed, wait_for};

fn worker(t: &TestDb, queue: &str) -> Worker {
    Worker::builder(t.client.clone())
        .queue(queue, 4)
        .poll_interval(Duration::from_secs(3600), Duration::from_secs(3600))
        .register_any(None, |_args, _ctx| async { Ok(()) })
        .build()
        .unwrap()
}

#[tokio::test]
async fn sql_functions_enqueue_jobs_that_a_rust_worker_runs() {
    let t = fresh().await;
    let w = worker(&t, "mail");
    let mut events = w.subscribe();
    let handle = w.start();
    wait_for(&mut events, |e| matches!(e, Event::ListenerConnected)).await;
    let pg = t.sql().await;
    let one: i64 = pg
        .query_one("SELECT skiplock.enqueue('welcome', '{\"user\": 1}', queue => 'mail', priority => 2)", &[])
        .await
        .unwrap()
        .get(0);
    let many: Vec<i64> = pg
        .query(
            r#"SELECT * FROM skiplock.enqueue_many('[
                 {"kind": "welcome", "args": {"user": 2}, "queue": "mail"},
                 {"kind": "digest", "queue": "mail", "unique_key": "digest:3", "max_attempts": 3},
                 {"kind": "digest", "queue": "mail", "unique_key": "digest:3"}]')"#,
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(many.len(), 3);
    assert_eq!(many[1], many[2], "the duplicate unique key returns its holder");
    // A NOTIFY woke the idle worker (its poll interval is an hour).
    let woken = wait_for(&mut events, |e| matches!(e, Event::Woken { .. })).await;
    assert_eq!(woken, Event::Woken { queue: "mail".into(), source: WakeSource::Notify });
    wait_completed(&mut events, &[one, many[0], many[1]]).await;
    handle.shutdown().await;
    let row = t.client.job(one).await.unwrap().unwrap();
    assert_eq!((row.kind.as_str(), row.priority, row.args["user"].as_i64()), ("welcome", 2, Some(1)));
    assert_eq!(t.client.job(many[1]).await.unwrap().unwrap().max_attempts, 3);

    // Scheduled from SQL: not available before its time.
    let later: i64 = pg
        .query_one("SELECT skiplock.enqueue('later', '{}', run_at => now() + interval '1 hour')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(t.client.job(later).await.unwrap().unwrap().state, JobState::Scheduled);
    // Cancel and retry from SQL.
    let cancelled: Vec<(i64, String)> = pg
        .query("SELECT id, result FROM skiplock.cancel(ARRAY[$1::bigint, 999999])", &[&later])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(cancelled, vec![(later, "cancelled".to_owned())]);
    let retried: Vec<i64> = pg
        .query("SELECT * FROM skiplock.retry(ARRAY[$1::bigint])", &[&later])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(retried, vec![later]);
    assert_eq!(t.client.job(later).await.unwrap().unwrap().state, JobState::Available);
}

#[tokio::test]
async fn a_trigger_on_a_user_table_enqueues_a_job_a_worker_runs() {
    let t = fresh().await;
    let pg = t.sql().await;
    pg.batch_execute(
        "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL);
         CREATE FUNCTION users_welcome() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM skiplock.enqueue('welcome', jsonb_build_object('user_id', NEW.id, 'email', NEW.email),
                                      queue => 'mail');
             RETURN NEW;
         END $$;
         CREATE TRIGGER users_welcome AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION users_welcome();",
    )
    .await
    .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let w = Worker::builder(t.client.clone())
        .queue("mail", 2)
        .register_raw("welcome", None, move |args, _ctx| {
            s.lock().unwrap().push(serde_json::from_str::<serde_json::Value>(args.get()).unwrap());
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let mut events = w.subscribe();
    let handle = w.start();
    // A rolled-back insert enqueues nothing; a committed one does.
    pg.batch_execute("BEGIN; INSERT INTO users (email) VALUES ('gone@example.com'); ROLLBACK;").await.unwrap();
    pg.execute("INSERT INTO users (email) VALUES ('ada@example.com')", &[]).await.unwrap();
    wait_for(&mut events, |e| matches!(e, Event::Finished { state: JobState::Completed, .. })).await;
    handle.shutdown().await;
    assert_eq!(*seen.lock().unwrap(), vec![serde_json::json!({ "user_id": 2, "email": "ada@example.com" })]);
    assert_eq!(t.count("jobs_archive", "kind = 'welcome'").await, 1);
}

#[tokio::test]
async fn bad_input_fails_with_the_field_named_as_in_rust() {
    let t = fresh().await;
    let pg = t.sql().await;
    let sql_err = async |sql: &str| {
        let e = pg.query(sql, &[]).await.unwrap_err();
        let db = e.as_db_error().expect("a server error");
        assert_eq!(db.code().code(), "22023", "{sql}: {}", db.message());
        db.message().to_owned()
    };
    // The same rules, the same messages as the Rust enqueue.
    let rust_err = async |job: NewJob| t.client.enqueue_job(job).await.unwrap_err().to_string();
    assert_eq!(
        sql_err("SELECT skiplock.enqueue('k', '{}', queue => 'bad queue')").await,
        rust_err(NewJob::new("k", &(), EnqueueOptions::new().queue("bad queue")).unwrap()).await
    );
    assert_eq!(
        sql_err("SELECT skiplock.enqueue('no spaces', '{}')").await,
        rust_err(NewJob::new("no spaces", &(), EnqueueOptions::new()).unwrap()).await
    );
    assert_eq!(
        sql_err("SELECT skiplock.enqueue('k', '{}', priority => 10)").await,
        rust_err(NewJob::new("k", &(), EnqueueOptions::new().priority(10)).unwrap()).await
    );
    assert_eq!(
        sql_err("SELECT skiplock.enqueue('k', '{}', max_attempts => 0)").await,
        rust_err(NewJob::new("k", &(), EnqueueOptions::new().max_attempts(0)).unwrap()).await
    );
    assert_eq!(sql_err("SELECT skiplock.enqueue('k', NULL)").await, "invalid args: must not be null (use '{}')");
    // Empty, overlong and SQL-looking names; out-of-range numbers and times; big args.
    for (sql, want) in [
        ("SELECT skiplock.enqueue('', '{}')", "invalid kind: must not be empty"),
        ("SELECT skiplock.enqueue(repeat('k', 256), '{}')", "invalid kind: is 256 bytes long"),
        ("SELECT skiplock.enqueue('k', '{}', queue => repeat('q', 129))", "invalid queue: is 129 bytes long"),
        ("SELECT skiplock.enqueue('k''); DROP TABLE skiplock.jobs; --', '{}')", "invalid kind:"),
        ("SELECT skiplock.enqueue('k', '{}', queue => '\"; drop table')", "invalid queue:"),
        ("SELECT skiplock.enqueue('k', '{}', max_attempts => -1)", "invalid max_attempts: -1 is out of range"),
        ("SELECT skiplock.enqueue('k', '{}', priority => -1)", "invalid priority: -1 is out of range"),
        ("SELECT skiplock.enqueue('k', '{}', run_at => '1969-12-31T00:00:00Z')", "invalid run_at:"),
        (
            "SELECT skiplock.enqueue('k', jsonb_build_object('x', repeat('x', 1048576)))",
            "invalid args: is 1048585 bytes",
        ),
    ] {
        let got = sql_err(sql).await;
        assert!(got.starts_with(want), "{sql}: {got}");
    }
    assert!(
        sql_err("SELECT skiplock.enqueue('k', '{}', run_at => now() + interval '20 years')")
            .await
            .starts_with("invalid run_at:")
    );
    assert_eq!(
        sql_err("SELECT skiplock.enqueue_many('{}')").await,
        "invalid jobs: must be a JSON array of job objects"
    );
    assert_eq!(
        sql_err(r#"SELECT skiplock.enqueue_many('[{"kind": "a"}, {"kind": "b", "priority": "high"}]')"#).await,
        "invalid jobs[1].priority: must be an integer, not \"high\""
    );
    assert!(
        sql_err(r#"SELECT skiplock.enqueue_many('[{"kind": "a", "queue": "x y"}]')"#)
            .await
            .starts_with("invalid jobs[0].queue:")
    );
    assert!(
        sql_err(r#"SELECT skiplock.enqueue_many('[{"kind": "a", "prio": 1}]')"#)
            .await
            .starts_with("invalid jobs[0]: unknown field \"prio\"")
    );
    assert!(
        sql_err(r#"SELECT skiplock.enqueue_many('[{"kind": "a", "run_at": "soon"}]')"#)
            .await
            .starts_with("invalid jobs[0].run_at:")
    );
    assert!(sql_err("SELECT skiplock.pause('-x')").await.starts_with("invalid queue:"));
    assert_eq!(t.count("jobs", "true").await, 0, "nothing was written: all or none");
}

/// Pausing through the SQL API stops a running worker's claims (NOTIFYs
/// still wake it; it finds nothing to claim); resuming wakes it at once.
#[tokio::test]
async fn a_paused_queue_is_not_claimed_from_until_resumed() {
    // One wake-up per enqueue: the test counts them.
    let t = fresh_with(|b| b.notify_interval(Duration::ZERO)).await;
    let w = worker(&t, "reports");
    let mut events = w.subscribe();
    let handle = w.start();
    wait_for(&mut events, |e| matches!(e, Event::ListenerConnected)).await;
    let pg = t.sql().await;
    pg.execute("SELECT skiplock.pause('reports')", &[]).await.unwrap();
    assert!(t.client.queues().await.unwrap().iter().any(|q| q.name == "reports" && q.paused));
    // Each enqueue's NOTIFY wakes the producer, whose claim finds the queue
    // paused. A wake-up that comes while the producer claims is handled
    // once that claim is done (the producer waits again first), so when the
    // third Woken arrives the first two claims have been made and found
    // nothing. Each enqueue waits for the previous wake-up: two NOTIFYs
    // arriving together wake the producer once (a wake-up is a permit, not
    // a count).
    let mut ids = Vec::new();
    for _ in 0..3 {
        let job = NewJob::new("r", &(), EnqueueOptions::new().queue("reports")).unwrap();
        ids.push(t.client.enqueue_job(job).await.unwrap().id);
        match wait_for(&mut events, |e| {
            matches!(e, Event::Woken { .. } | Event::Claimed { .. } | Event::Started { .. })
        })
        .await
        {
            Event::Woken { .. } => {}
            other => panic!("claimed from a paused queue: {other:?}"),
        }
    }
    assert_eq!(t.count("jobs", "queue = 'reports' AND state = 'available'").await, 3);
    // Resume: the control NOTIFY wakes the producer at once (its poll
    // interval is an hour), and the jobs run.
    pg.execute("SELECT skiplock.resume('reports')", &[]).await.unwrap();
    let ev = wait_for(&mut events, |e| matches!(e, Event::Woken { .. })).await;
    assert_eq!(ev, Event::Woken { queue: "reports".into(), source: WakeSource::Notify });
    wait_completed(&mut events, &ids).await;
    handle.shutdown().await;
    assert!(t.client.queues().await.unwrap().iter().any(|q| q.name == "reports" && !q.paused));
}

/// `enqueue_many`'s integer fields take JSON integers only, as the Rust
/// path's JSON does (the CLI's job objects: `"priority": 1.0` is "expected
/// an integer"): `1.0` used to pass the integer check and then fail the
/// cast with 22P02, naming no field.
#[tokio::test]
async fn enqueue_many_refuses_numbers_with_a_fraction_naming_the_field() {
    let t = fresh().await;
    let pg = t.sql().await;
    for (jobs, want) in [
        (r#"[{"kind": "a", "priority": 1.0}]"#, "invalid jobs[0].priority: must be an integer, not 1.0"),
        (r#"[{"kind": "a"}, {"kind": "b", "priority": 2.5}]"#, "invalid jobs[1].priority: must be an integer, not 2.5"),
        (r#"[{"kind": "a", "max_attempts": 3.0}]"#, "invalid jobs[0].max_attempts: must be an integer, not 3.0"),
        (r#"[{"kind": "a", "max_attempts": -0.5}]"#, "invalid jobs[0].max_attempts: must be an integer, not -0.5"),
        (
            r#"[{"kind": "a", "max_attempts": 3000000000}]"#,
            "invalid jobs[0].max_attempts: must be an integer, not 3000000000",
        ),
    ] {
        let e = pg.query("SELECT * FROM skiplock.enqueue_many($1::text::jsonb)", &[&jobs]).await.unwrap_err();
        let db = e.as_db_error().expect("a server error");
        assert_eq!((db.code().code(), db.message()), ("22023", want), "{jobs}");
    }
    // Integers in any JSON spelling pass: 1e0 is the number 1 to jsonb.
    let ids = pg
        .query(r#"SELECT * FROM skiplock.enqueue_many('[{"kind": "a", "priority": 1e0, "max_attempts": 3}]')"#, &[])
        .await
        .unwrap();
    let job = t.client.job(ids[0].get(0)).await.unwrap().unwrap();
    assert_eq!((job.priority, job.max_attempts), (1, 3));
}

/// Polls until backend `pid` waits for a lock (at most 10 s).
async fn until_waiting_for_a_lock(t: &TestDb, pid: i32) {
    let watcher = t.sql().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let sql = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1";
    while !watcher.query_one(sql, &[&pid]).await.unwrap().get::<_, Option<bool>>(0).unwrap_or(false) {
        assert!(tokio::time::Instant::now() < deadline, "backend {pid} never waited for a lock");
        tokio::time::sleep(Duration::from_millis(5)).await; // a poll's interval, not a wait for an event
    }
}

/// `skiplock.cancel` of a job that a claim (or a release) changed after the
/// cancel's statement began (its snapshot saw the job as it was) but before
/// the cancel reached the job's row: the cancel acts on the job as it is
/// then. A job claimed meanwhile is flagged and reported 'cancelling'; a
/// running job released meanwhile is cancelled. Both used to be reported as
/// nothing and left alone (neither the waiting nor the running branch
/// matched the new row); `Client::cancel` asked again, SQL callers did not.
#[tokio::test]
async fn sql_cancel_of_a_job_claimed_or_released_meanwhile_acts_on_it_as_it_is_then() {
    let t = fresh().await;
    let claim = "UPDATE skiplock.jobs SET state = 'running', attempt = attempt + 1, attempted_at = now(),
                     lease_token = nextval('skiplock.lease_token_seq'), lease_expires_at = now() + interval '1 minute',
                     leased_by = 'w'
                 WHERE id = $1";
    let release = "UPDATE skiplock.jobs SET state = 'available', lease_token = NULL, lease_expires_at = NULL
                   WHERE id = $1";
    for (before, change, want, left) in [
        (None, claim, "cancelling", "state = 'running' AND cancel_requested_at IS NOT NULL"),
        (Some(claim), release, "cancelled", "false"),
    ] {
        let id = t.seed("default", "k", 1).await[0];
        let mut writer = t.sql().await;
        if let Some(before) = before {
            writer.execute(before, &[&id]).await.unwrap();
        }
        // The change is in flight: made, uncommitted, holding the row.
        let tx = writer.transaction().await.unwrap();
        tx.execute(change, &[&id]).await.unwrap();
        // The cancel starts now, and waits for the row.
        let canceller = t.sql().await;
        let pid: i32 = canceller.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
        let cancel = tokio::spawn(async move {
            let rows = canceller.query("SELECT id, result FROM skiplock.cancel(ARRAY[$1::bigint])", &[&id]).await;
            rows.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect::<Vec<(i64, String)>>()
        });
        until_waiting_for_a_lock(&t, pid).await;
        tx.commit().await.unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), cancel).await.unwrap().unwrap();
        assert_eq!(result, vec![(id, want.to_owned())], "{change}");
        assert_eq!(t.count("jobs", &format!("id = {id} AND {left}")).await, i64::from(left != "false"), "{change}");
        if want == "cancelled" {
            assert_eq!(t.client.job(id).await.unwrap().unwrap().state, JobState::Cancelled);
        }
    }
}
