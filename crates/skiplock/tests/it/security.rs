//! Least privilege: the roles of docs/OPERATIONS.md ("Roles and privileges"),
//! created by running that document's SQL as it stands, and checked from
//! both sides: an enqueue-only role enqueues every way there is and can do
//! nothing else; a worker role runs jobs and maintenance and cannot change
//! the schema. And job errors never keep the database's password.

use std::time::Duration;

use serde_json::json;
use skiplock::{Client, EnqueueOptions, Event, JobError, JobState, Maintenance, NewJob, PeriodicJob, Worker};

use crate::support::wait_for;
use crate::support::{TestDb, fresh};

/// The role script of docs/OPERATIONS.md: the first `sql` block after the
/// "Roles and privileges" heading.
fn roles_sql() -> &'static str {
    let doc = include_str!("../../../../docs/OPERATIONS.md");
    let section = &doc[doc.find("## Roles and privileges").expect("the section")..];
    let start = section.find("```sql\n").expect("its SQL") + "```sql\n".len();
    &section[start..start + section[start..].find("```").expect("the block's end")]
}

/// The documented roles, renamed per test database (roles are shared by
/// the whole cluster), dropped at the end.
struct Roles {
    suffix: String,
    url: String,
}

const ROLE_NAMES: [&str; 4] = ["skiplock_enqueue", "skiplock_worker", "app_web", "app_worker"];

impl Roles {
    async fn create(t: &TestDb) -> Roles {
        let suffix = t.db.name().to_owned();
        let mut sql = roles_sql().to_owned();
        for role in ROLE_NAMES {
            sql = sql.replace(role, &format!("{role}_{suffix}"));
        }
        t.sql().await.batch_execute(&sql).await.expect("the documented role script runs");
        Roles { suffix, url: t.db.url().to_owned() }
    }

    /// The test database's URL, logging in as `role` (with `password`,
    /// which trust authentication ignores).
    fn url(&self, role: &str, password: Option<&str>) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap();
        let host = rest.split_once('@').map_or(rest, |(_, h)| h);
        let pw = password.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{scheme}://{role}_{}{pw}@{host}", self.suffix)
    }

    async fn drop(self, t: &TestDb) {
        let owner = t.sql().await;
        for role in ROLE_NAMES.iter().rev() {
            let r = format!("{role}_{}", self.suffix);
            owner.batch_execute(&format!("DROP OWNED BY {r}; DROP ROLE {r}")).await.unwrap();
        }
    }
}

/// A plain connection as `url` (with its TLS settings, for `SKIPLOCK_TEST_TLS=1`).
async fn connect(url: &str) -> tokio_postgres::Client {
    skiplock::connect_raw(url).await.expect("connect")
}

/// SQLSTATE 42501, insufficient_privilege.
fn is_denied(e: &tokio_postgres::Error) -> bool {
    e.code().map(|c| c.code()) == Some("42501")
}

/// Each statement fails with insufficient_privilege (the failure lists
/// every one that did not).
async fn all_denied(pg: &tokio_postgres::Client, statements: &[&str]) {
    let mut allowed = Vec::new();
    for sql in statements {
        match pg.batch_execute(sql).await {
            Err(e) if is_denied(&e) => {}
            Err(e) => {
                allowed.push(format!("{sql}: {}", e.as_db_error().map_or(e.to_string(), |d| d.message().to_owned())))
            }
            Ok(()) => allowed.push(format!("{sql}: ran")),
        }
    }
    assert!(allowed.is_empty(), "not refused with 42501: {allowed:#?}");
}

/// What neither role may do to the schema.
const SCHEMA_CHANGES: [&str; 7] = [
    "CREATE TABLE skiplock.intruder (i int)",
    "ALTER TABLE skiplock.jobs ADD COLUMN intruder int",
    "ALTER TABLE skiplock.jobs DROP CONSTRAINT jobs_leased_iff_running",
    "DROP TABLE skiplock.jobs_archive",
    "TRUNCATE skiplock.jobs",
    "CREATE FUNCTION skiplock.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "DROP SCHEMA skiplock CASCADE",
];

#[tokio::test]
async fn an_enqueue_only_role_enqueues_every_way_and_can_do_nothing_else() {
    let t = fresh().await;
    let roles = Roles::create(&t).await;
    let web = Client::builder(roles.url("app_web", None)).build().unwrap();
    // One job; a COPY-sized batch; a unique key twice (the holder's id the
    // second time).
    web.enqueue_job(NewJob::new("k", &json!({ "a": 1 }), EnqueueOptions::new()).unwrap()).await.unwrap();
    let batch = (0..150).map(|i| NewJob::new("k", &json!({ "i": i }), EnqueueOptions::new()).unwrap()).collect();
    assert_eq!(web.enqueue_many(batch).await.unwrap().len(), 150);
    let keyed = || NewJob::new("k", &(), EnqueueOptions::new().unique_key("once")).unwrap();
    let first = web.enqueue_job(keyed()).await.unwrap();
    let again = web.enqueue_job(keyed()).await.unwrap();
    assert_eq!((again.id, again.inserted), (first.id, false));
    // A key that outlives its job: still held once its job completed (in the
    // key's scope), taken over once it expired. The role neither reads nor
    // writes unique_keys: the take-over and the look-up of the holder run in
    // the owner's SECURITY DEFINER functions.
    let lasting = || {
        let opts = EnqueueOptions::new().queue("lasting").unique_key("lasting").unique_states([
            JobState::Available,
            JobState::Scheduled,
            JobState::Running,
            JobState::Retryable,
            JobState::Completed,
        ]);
        NewJob::new("k", &(), opts).unwrap()
    };
    let held = web.enqueue_job(lasting()).await.unwrap();
    assert!(held.inserted);
    let job = t.client.claim("lasting", 1, Duration::from_secs(30), "owner").await.unwrap().pop().unwrap();
    t.client.complete(&[job.lease]).await.unwrap();
    let again = web.enqueue_job(lasting()).await.unwrap();
    assert_eq!((again.id, again.inserted), (held.id, false), "held by its completed job");
    let owner = t.sql().await;
    owner.execute("UPDATE skiplock.unique_keys SET expires_at = now() WHERE key = 'lasting'", &[]).await.unwrap();
    let taken = web.enqueue_job(lasting()).await.unwrap();
    assert!(taken.inserted && taken.id != held.id, "taken over once expired: {taken:?}");
    // In the role's own transaction: all or nothing with its data.
    let mut pg = connect(&roles.url("app_web", None)).await;
    let tx = pg.transaction().await.unwrap();
    web.enqueue_many_tx(&tx, vec![NewJob::new("k", &(), EnqueueOptions::new()).unwrap()]).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = pg.transaction().await.unwrap();
    web.enqueue_many_tx(&tx, vec![NewJob::new("k", &(), EnqueueOptions::new()).unwrap()]).await.unwrap();
    tx.commit().await.unwrap();
    // The SQL API, unique keys too: a duplicate gives its holder's id.
    pg.batch_execute("SELECT skiplock.enqueue('k', '{}'); SELECT skiplock.enqueue_many('[{\"kind\": \"k\"}]')")
        .await
        .unwrap();
    let one = "SELECT skiplock.enqueue('k', '{}', unique_key => 'sql')";
    let sql_key: i64 = pg.query_one(one, &[]).await.unwrap().get(0);
    assert_eq!(pg.query_one(one, &[]).await.unwrap().get::<_, i64>(0), sql_key);
    let many = r#"SELECT * FROM skiplock.enqueue_many('[{"kind": "k", "unique_key": "sql"},
                    {"kind": "k", "unique_key": "sql2"}, {"kind": "k", "unique_key": "sql2"}]')"#;
    let ids: Vec<i64> = pg.query(many, &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!((ids[0], ids[1]), (sql_key, ids[2]), "{ids:?}");
    let hot = 1 + 150 + 1 + 1 + 1 + 2 + 1 + 1;
    assert_eq!(t.count("jobs", "true").await, hot);

    // Nothing else: not claim, finish, read args, keys or states, take a key
    // over, cancel, retry, pause, delete, call the worker's functions…
    let e = web.claim("default", 1, Duration::from_secs(30), "web").await.unwrap_err();
    assert_eq!(e.sqlstate(), Some("42501"), "{e}");
    let some_id = first.id.to_string();
    all_denied(
        &pg,
        &[
            "SELECT args FROM skiplock.jobs",
            "SELECT unique_key FROM skiplock.jobs",
            "SELECT id, queue, state FROM skiplock.jobs",
            "SELECT * FROM skiplock.jobs_archive",
            "SELECT id, state FROM skiplock.jobs_archive",
            "SELECT key, job_id FROM skiplock.unique_keys",
            "UPDATE skiplock.unique_keys SET expires_at = now()",
            "INSERT INTO skiplock.unique_keys (key, job_id, final_states) VALUES ('x', 1, '{completed}')",
            "DELETE FROM skiplock.unique_keys",
            "UPDATE skiplock.jobs SET priority = 9",
            "DELETE FROM skiplock.jobs",
            "INSERT INTO skiplock.jobs (kind, state, lease_token, lease_expires_at) VALUES ('k', 'running', 1, now())",
            &format!("SELECT skiplock.cancel(ARRAY[{some_id}::bigint])"),
            &format!("SELECT skiplock.retry(ARRAY[{some_id}::bigint])"),
            "SELECT skiplock.pause('default')",
            "UPDATE skiplock.leader SET expires_at = now()",
            "SELECT * FROM skiplock.leader_elect('web', 1000)",
            "SELECT * FROM skiplock.unique_keys_prune('', 1000)",
            "SELECT * FROM skiplock.archive_partitions_expire(now(), '0', '0', '0')",
            // The marks: lowered by its enqueues' trigger in the owner's
            // name, never raised, read or written by the role itself.
            "SELECT skiplock.mark_advance('default')",
            "SELECT skiplock.queue_marks_prune()",
            "SELECT * FROM skiplock.queue_marks",
            "INSERT INTO skiplock.queue_marks (queue, is_advance, priority, run_at, id) VALUES ('default', false, 0, now(), 1)",
        ],
    )
    .await;
    // The take-over function takes only keys that are free: called by hand
    // on a held one, it takes nothing.
    let grab = "SELECT * FROM skiplock.unique_keys_claim(ARRAY['lasting'], ARRAY[1::bigint], ARRAY['{completed}'],
                ARRAY[NULL::timestamptz])";
    assert!(pg.query(grab, &[]).await.unwrap().is_empty());
    let holder: i64 =
        owner.query_one("SELECT job_id FROM skiplock.unique_keys WHERE key = 'lasting'", &[]).await.unwrap().get(0);
    assert_eq!(holder, taken.id);
    // …nor change the schema.
    all_denied(&pg, &SCHEMA_CHANGES).await;
    assert_eq!(t.count("jobs", "state = 'available'").await, hot, "nothing changed");
    drop(pg);
    roles.drop(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_role_runs_jobs_and_maintenance_but_cannot_change_the_schema() {
    let t = fresh().await;
    let roles = Roles::create(&t).await;
    let web = Client::builder(roles.url("app_web", None)).build().unwrap();
    let jobs = (0..100).map(|i| NewJob::new("k", &json!({ "i": i }), EnqueueOptions::new()).unwrap()).collect();
    web.enqueue_many(jobs).await.unwrap();
    let wc = Client::builder(roles.url("app_worker", None)).build().unwrap();

    // The lifecycle calls: claim, heartbeat, complete, fail, rescue.
    let claimed = wc.claim("default", 3, Duration::from_secs(30), "w").await.unwrap();
    assert_eq!(claimed.len(), 3);
    let leases: Vec<_> = claimed.iter().map(|j| j.lease).collect();
    assert_eq!(wc.heartbeat(&leases, Duration::from_secs(30)).await.unwrap().extended.len(), 3);
    assert_eq!(wc.complete(&leases[..1]).await.unwrap().applied.len(), 1);
    assert_eq!(wc.fail(&[(leases[1], "boom".into(), Duration::ZERO)]).await.unwrap().applied.len(), 1);
    let expire = "UPDATE skiplock.jobs SET lease_expires_at = now() - interval '1 second' WHERE state = 'running'";
    t.sql().await.execute(expire, &[]).await.unwrap();
    assert_eq!(wc.rescue(10).await.unwrap().rescued, vec![(leases[2].id, JobState::Available)]);

    // A whole worker with maintenance on: it is elected and drains the queue.
    let worker = Worker::builder(wc.clone())
        .queue("default", 10)
        .register_any(None, |_args, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    let (mut elected, mut completed) = (false, 0);
    while !elected || completed < 99 {
        match wait_for(&mut events, |e| matches!(e, Event::Finished { .. } | Event::LeaderElected)).await {
            Event::LeaderElected => elected = true,
            Event::Finished { state: JobState::Completed, .. } => completed += 1,
            _ => {}
        }
    }
    handle.shutdown().await;
    assert_eq!(t.count("jobs_archive", "state = 'completed'").await, 100);

    // The archive's partitions are DDL, run for this role by the owner's
    // SECURITY DEFINER functions (see OPERATIONS.md): the worker keeps them.
    // With a periodic job whose key outlives its runs (unique_keys, through
    // the owner's functions, as for the enqueue role).
    let tick = EnqueueOptions::new().queue("tick").unique_key("tick").unique_states([
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
    ]);
    let tick = PeriodicJob::every("tick", Duration::from_secs(3600)).new_job(NewJob::new("tick", &(), tick).unwrap());
    let m = Maintenance::builder(wc.clone()).id("w").periodic(tick).build().unwrap();
    assert!(m.elect().await.unwrap());
    // The worker above, as leader, already made today's partitions; this
    // pass finds them there and runs retention.
    m.archive_once(None).await.unwrap().expect("the leader's pass");
    let days: i64 = t
        .sql()
        .await
        .query_one("SELECT count(*) FROM pg_inherits WHERE inhparent = 'skiplock.jobs_archive'::regclass", &[])
        .await
        .unwrap()
        .get(0);
    assert!(days > 1, "dated partitions beside the default one: {days}");
    assert_eq!(t.count("jobs_archive", "tableoid::regclass::text = 'skiplock.jobs_archive_default'").await, 0);
    assert_eq!(t.count("jobs_archive", "state = 'completed'").await, 100, "moved into the new partitions");
    // Periodic runs: registered, then due twice; the second finds the key
    // held by the first.
    assert!(m.periodic_once().await.unwrap().unwrap().enqueued.is_empty(), "registered");
    let due = "UPDATE skiplock.periodic SET next_run_at = now() - interval '1 second'";
    let mut runs = Vec::new();
    for _ in 0..2 {
        t.sql().await.execute(due, &[]).await.unwrap();
        runs.extend(m.periodic_once().await.unwrap().unwrap().enqueued);
    }
    assert_eq!(runs.iter().map(|r| r.inserted).collect::<Vec<_>>(), [true, false], "{runs:?}");
    assert_eq!(runs[0].id, runs[1].id);
    assert!(m.resign().await.unwrap());
    // It reads what it ran (the CLI's `work` checks the database with a
    // look-up of a job).
    assert_eq!(wc.job(runs[0].id).await.unwrap().unwrap().state, JobState::Available);

    // It cannot erase or rewrite the archive, rewrite what a job is, or
    // change periodic jobs, unique keys and the leader row beyond what its
    // statements do (those go through the owner's functions).
    let pg = connect(&roles.url("app_worker", None)).await;
    let some_id = leases[0].id;
    all_denied(
        &pg,
        &[
            "DELETE FROM skiplock.jobs_archive",
            "UPDATE skiplock.jobs_archive SET errors = '[]'",
            "DELETE FROM skiplock.jobs_archive_default",
            &format!("SELECT skiplock.retry(ARRAY[{some_id}::bigint])"),
            "UPDATE skiplock.jobs SET args = '{}'",
            "UPDATE skiplock.jobs SET kind = 'x'",
            "UPDATE skiplock.jobs SET priority = 9",
            "DELETE FROM skiplock.periodic",
            "UPDATE skiplock.periodic SET name = 'x'",
            "SELECT * FROM skiplock.unique_keys",
            "UPDATE skiplock.unique_keys SET expires_at = now()",
            "DELETE FROM skiplock.unique_keys",
            "INSERT INTO skiplock.unique_keys (key, job_id, final_states) VALUES ('x', 1, '{completed}')",
            "SELECT * FROM skiplock.leader",
            "UPDATE skiplock.leader SET expires_at = 'infinity'",
            "DELETE FROM skiplock.leader",
            "INSERT INTO skiplock.leader (name, leader_id, expires_at) VALUES ('x', 'w', 'infinity')",
            "SELECT skiplock.archive_partition_create(current_date + 100)",
            "DELETE FROM skiplock.schema_migrations",
            "SELECT skiplock.pause('default')",
            // The marks move only through the owner's functions.
            "INSERT INTO skiplock.queue_marks (queue, is_advance, run_ats, ids)
             VALUES ('default', true, array_fill('infinity'::timestamptz, ARRAY[10]), array_fill(0::bigint, ARRAY[10]))",
            "DELETE FROM skiplock.queue_marks",
        ],
    )
    .await;
    all_denied(&pg, &SCHEMA_CHANGES).await;
    assert_eq!(t.count("jobs_archive", "true").await, 100, "the archive is as it was");
    drop(pg);
    roles.drop(&t).await;
}

/// Secrets a handler's error may quote: the URL the worker connects with,
/// its password alone, and a key-value connection string.
fn leaky(url: &str, pw: &str) -> String {
    format!("cannot reach {url}: password {pw} refused (host=db user=app password={pw})")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_errors_are_stored_without_the_database_url_or_password() {
    const PW: &str = "S3cret-pw";
    let t = fresh().await;
    let roles = Roles::create(&t).await;
    let url = roles.url("app_worker", Some(PW));
    let wc = Client::builder(&url).build().unwrap();
    let web = Client::builder(roles.url("app_web", None)).build().unwrap();
    let leak = leaky(&url, PW);
    let l = leak.clone();
    // Every way a handler's words reach the database: a retry, a panic, a
    // discard, a cancel.
    let worker = Worker::builder(wc)
        .queue("default", 4)
        .register_raw("leak", None, move |args, _ctx| {
            let l = l.clone();
            async move {
                match args.get() {
                    "0" => Err(JobError::retry(l)),
                    "1" => panic!("{l}"),
                    "2" => Err(JobError::discard(l)),
                    _ => Err(JobError::cancel(l)),
                }
            }
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let opts = || EnqueueOptions::new().max_attempts(1);
    let jobs = (0..4).map(|i| NewJob::new("leak", &i, opts()).unwrap()).collect();
    let ids: Vec<i64> = web.enqueue_many(jobs).await.unwrap().into_iter().map(|e| e.id).collect();
    let handle = worker.start();
    for _ in 0..4 {
        wait_for(&mut events, |e| matches!(e, Event::Finished { state, .. } if state.is_final())).await;
    }
    handle.shutdown().await;
    for id in ids {
        let row = t.client.job(id).await.unwrap().unwrap();
        let text = &row.errors.last().expect("an error was kept").error;
        assert!(!text.contains(PW) && text.contains("***"), "job {id} kept {text:?}");
        assert!(text.contains("app_worker"), "the rest of the text stays: {text:?}");
    }
    roles.drop(&t).await;
}

/// The same for errors given to the lifecycle calls directly (a worker of
/// one's own on `Client::claim` and `Client::fail`). (The first run of this
/// test found that only the `Worker` runtime redacted; `Client::fail` and
/// `Client::finish` now do too.)
#[tokio::test]
async fn errors_given_to_client_fail_are_stored_without_the_database_url_or_password() {
    const PW: &str = "S3cret-pw";
    let t = fresh().await;
    let roles = Roles::create(&t).await;
    let url = roles.url("app_worker", Some(PW));
    let wc = Client::builder(&url).build().unwrap();
    let id = t.seed("default", "k", 1).await[0];
    let job = wc.claim("default", 1, Duration::from_secs(30), "w").await.unwrap().pop().unwrap();
    wc.fail(&[(job.lease, leaky(&url, PW), Duration::ZERO)]).await.unwrap();
    roles.drop(&t).await;
    let row = t.client.job(id).await.unwrap().unwrap();
    let text = &row.errors[0].error;
    assert!(!text.contains(PW), "kept {text:?}");
}

/// Runs `sql` and expects SQLSTATE 22023 with a message naming `field`.
async fn refused_naming(pg: &tokio_postgres::Client, sql: &str, field: &str) {
    let e = pg.batch_execute(sql).await.expect_err(sql);
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e:?}"));
    assert_eq!(db.code().code(), "22023", "{sql}: {}", db.message());
    assert!(db.message().starts_with(&format!("invalid {field}: ")), "{sql}: {}", db.message());
}

/// The owner's `SECURITY DEFINER` functions act with the owner's rights
/// for whoever may call them, so they bound their arguments: the worker role
/// can neither drop every dated partition (`at` = infinity, negative
/// retention, a time after now) nor create tables without bound, nor hold
/// the leader row for a year; neither role can claim keys with made-up
/// scopes or expiries.
#[tokio::test]
async fn the_definer_functions_refuse_arguments_out_of_bounds() {
    let t = fresh().await;
    let roles = Roles::create(&t).await;
    let pg = connect(&roles.url("app_worker", None)).await;
    // One partition per call (each in a transaction of its own): four calls
    // make today's and three days ahead, a fifth finds nothing to do.
    for made in [true, true, true, true, false] {
        let rows = pg.query("SELECT * FROM skiplock.archive_partitions_ensure(now(), 3)", &[]).await.unwrap();
        assert_eq!(rows.len() == 1, made);
    }
    let parts = "SELECT count(*) FROM pg_class WHERE relnamespace = 'skiplock'::regnamespace AND relkind IN ('r', 'p') AND relname ~ '^jobs_archive_p'";
    let owner = t.sql().await;
    let before: i64 = owner.query_one(parts, &[]).await.unwrap().get(0);
    assert_eq!(before, 4 * 4, "four days, each with its three leaves");
    for (sql, field) in [
        ("SELECT skiplock.archive_partitions_expire('infinity', '0', '0', '0')", "at"),
        ("SELECT skiplock.archive_partitions_expire(now() + interval '2 days', '0', '0', '0')", "at"),
        ("SELECT skiplock.archive_partitions_expire(NULL, '0', '0', '0')", "at"),
        ("SELECT skiplock.archive_partitions_expire(now(), '-3 days', NULL, NULL)", "keep_completed"),
        ("SELECT skiplock.archive_partitions_expire(now(), NULL, '-1 second', NULL)", "keep_cancelled"),
        ("SELECT skiplock.archive_partitions_expire(now(), NULL, NULL, '1000 years')", "keep_discarded"),
        ("SELECT skiplock.archive_partitions_ensure(now(), 2000000000)", "days_ahead"),
        ("SELECT skiplock.archive_partitions_ensure(now(), 367)", "days_ahead"),
        ("SELECT skiplock.archive_partitions_ensure(now(), -1)", "days_ahead"),
        ("SELECT skiplock.archive_partitions_ensure(now(), NULL)", "days_ahead"),
        ("SELECT skiplock.archive_partitions_ensure('infinity', 1)", "at"),
        ("SELECT skiplock.archive_partitions_ensure(now() + interval '1 year', 1)", "at"),
        ("SELECT skiplock.archive_partitions_ensure(now() - interval '1 year', 1)", "at"),
        ("SELECT skiplock.archive_prune_default('infinity', '0', '0', '0', 10)", "at"),
        ("SELECT skiplock.archive_prune_default(now(), '0', '-1 day', '0', 10)", "keep_cancelled"),
        ("SELECT skiplock.archive_prune_default(now(), '0', '0', '0', 0)", "limit"),
        ("SELECT * FROM skiplock.leader_elect('w', 365 * 86400000::bigint)", "lease"),
        ("SELECT * FROM skiplock.leader_elect('w', 0)", "lease"),
        ("SELECT * FROM skiplock.unique_keys_prune('', 0)", "limit"),
        ("SELECT * FROM skiplock.unique_keys_prune(NULL, 10)", "after"),
        ("SELECT * FROM skiplock.unique_keys_claim('{a,b}', '{1}', '{\"{completed}\"}', '{NULL}')", "keys"),
        ("SELECT * FROM skiplock.unique_keys_claim('{a}', '{1}', '{\"{available}\"}', '{NULL}')", "final_states"),
        ("SELECT * FROM skiplock.unique_keys_claim('{a}', '{1}', '{\"{}\"}', '{NULL}')", "final_states"),
        ("SELECT * FROM skiplock.unique_keys_claim('{a}', '{1}', '{\"{completed}\"}', '{infinity}')", "expires_at"),
    ] {
        refused_naming(&pg, sql, field).await;
    }
    let after: i64 = owner.query_one(parts, &[]).await.unwrap().get(0);
    assert_eq!(after, before, "nothing made, nothing dropped");
    assert_eq!(t.count("leader", "true").await + t.count("unique_keys", "true").await, 0);
    // The library refuses such a lease before it gets there.
    let long = skiplock::LEADER_LEASE_MAX + Duration::from_secs(1);
    let e = Maintenance::builder(t.client.clone()).leader_lease(long).build().unwrap_err().to_string();
    assert!(e.starts_with("invalid leader_lease: "), "{e}");
    // Within bounds they work: a month back, retention of zero (one table
    // per call, as for ensure).
    for _ in 0..2 {
        pg.batch_execute("SELECT * FROM skiplock.archive_partitions_ensure(now() - interval '30 days', 1)")
            .await
            .unwrap();
    }
    let mut dropped = 0;
    while !pg
        .query("SELECT * FROM skiplock.archive_partitions_expire(now(), '0', '0', '0')", &[])
        .await
        .unwrap()
        .is_empty()
    {
        dropped += 1;
    }
    assert_eq!(dropped, 2, "the two past days");
    let left: i64 = owner.query_one(parts, &[]).await.unwrap().get(0);
    assert_eq!(left, before, "today's and later partitions stay");
    drop(pg);
    roles.drop(&t).await;
}
