//! Least privilege: the roles of docs/OPERATIONS.md ("Roles and privileges"),
//! created by running that document's SQL as it stands, and checked from
//! both sides: an enqueue-only role enqueues every way there is and can do
//! nothing else; a worker role runs jobs and maintenance and cannot change
//! the schema. And job errors never keep the database's password.

use std::time::Duration;

use serde_json::json;
use skiplock::{Client, EnqueueOptions, Event, JobError, JobState, Maintenance, NewJob, Worker};

use crate::support::{TestDb, fresh};
use crate::worker::wait_for;

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

/// A plain connection as `url`.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    c
}

/// SQLSTATE 42501, insufficient_privilege.
fn is_denied(e: &tokio_postgres::Error) -> bool {
    e.code().map(|c| c.code()) == Some("42501")
}

/// Each statement fails with insufficient_privilege.
async fn all_denied(pg: &tokio_postgres::Client, statements: &[&str]) {
    for sql in statements {
        let e = pg.batch_execute(sql).await.expect_err(sql);
        assert!(is_denied(&e), "{sql}: {e:?}");
    }
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
    // One job; a COPY-sized batch; a unique key twice; a key that outlives its job.
    web.enqueue_job(NewJob::new("k", &json!({ "a": 1 }), EnqueueOptions::new()).unwrap()).await.unwrap();
    let batch = (0..150).map(|i| NewJob::new("k", &json!({ "i": i }), EnqueueOptions::new()).unwrap()).collect();
    assert_eq!(web.enqueue_many(batch).await.unwrap().len(), 150);
    let keyed = || NewJob::new("k", &(), EnqueueOptions::new().unique_key("once")).unwrap();
    let first = web.enqueue_job(keyed()).await.unwrap();
    let again = web.enqueue_job(keyed()).await.unwrap();
    assert_eq!((again.id, again.inserted), (first.id, false));
    let lasting = EnqueueOptions::new().unique_key("lasting").unique_states([
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retryable,
        JobState::Completed,
    ]);
    assert!(web.enqueue_job(NewJob::new("k", &(), lasting).unwrap()).await.unwrap().inserted);
    // In the role's own transaction: all or nothing with its data.
    let mut pg = connect(&roles.url("app_web", None)).await;
    let tx = pg.transaction().await.unwrap();
    web.enqueue_many_tx(&tx, vec![NewJob::new("k", &(), EnqueueOptions::new()).unwrap()]).await.unwrap();
    tx.rollback().await.unwrap();
    let tx = pg.transaction().await.unwrap();
    web.enqueue_many_tx(&tx, vec![NewJob::new("k", &(), EnqueueOptions::new()).unwrap()]).await.unwrap();
    tx.commit().await.unwrap();
    // The SQL API.
    pg.batch_execute("SELECT skiplock.enqueue('k', '{}'); SELECT skiplock.enqueue_many('[{\"kind\": \"k\"}]')")
        .await
        .unwrap();
    assert_eq!(t.count("jobs", "true").await, 1 + 150 + 1 + 1 + 1 + 2);

    // Nothing else: not claim, finish, read args, cancel, retry, pause, delete…
    let e = web.claim("default", 1, Duration::from_secs(30), "web").await.unwrap_err();
    assert_eq!(e.sqlstate(), Some("42501"), "{e}");
    let some_id = first.id.to_string();
    all_denied(
        &pg,
        &[
            "SELECT args FROM skiplock.jobs",
            "SELECT * FROM skiplock.jobs_archive",
            "UPDATE skiplock.jobs SET priority = 9",
            "DELETE FROM skiplock.jobs",
            "DELETE FROM skiplock.unique_keys",
            &format!("SELECT skiplock.cancel(ARRAY[{some_id}::bigint])"),
            &format!("SELECT skiplock.retry(ARRAY[{some_id}::bigint])"),
            "SELECT skiplock.pause('default')",
            "UPDATE skiplock.leader SET expires_at = now()",
        ],
    )
    .await;
    // …nor change the schema.
    all_denied(&pg, &SCHEMA_CHANGES).await;
    assert_eq!(t.count("jobs", "state = 'available'").await, 156, "nothing changed");
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
    let m = Maintenance::builder(wc.clone()).id("w").build().unwrap();
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

    let pg = connect(&roles.url("app_worker", None)).await;
    all_denied(&pg, &SCHEMA_CHANGES).await;
    all_denied(&pg, &["DELETE FROM skiplock.schema_migrations", "SELECT skiplock.pause('default')"]).await;
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
/// one's own on `Client::claim` and `Client::fail`).
///
/// Fails today: `Client::fail` and `Client::finish` store the text as given;
/// only the `Worker` runtime redacts (`runtime::Shared::redact`).
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

/// The archive's `SECURITY DEFINER` functions run the owner's DDL for
/// whoever may call them, so they bound their arguments: the worker role
/// can neither drop every dated partition (`at` = infinity, negative
/// retention, a time after now) nor create tables without bound.
#[tokio::test]
async fn the_archive_s_definer_functions_refuse_arguments_out_of_bounds() {
    let t = fresh().await;
    let roles = Roles::create(&t).await;
    let pg = connect(&roles.url("app_worker", None)).await;
    pg.batch_execute("SELECT * FROM skiplock.archive_partitions_ensure(now(), 3)").await.unwrap();
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
    ] {
        refused_naming(&pg, sql, field).await;
    }
    let after: i64 = owner.query_one(parts, &[]).await.unwrap().get(0);
    assert_eq!(after, before, "nothing made, nothing dropped");
    // Within bounds they work: a month back, retention of zero.
    pg.batch_execute("SELECT * FROM skiplock.archive_partitions_ensure(now() - interval '30 days', 1)").await.unwrap();
    let dropped = pg.query("SELECT * FROM skiplock.archive_partitions_expire(now(), '0', '0', '0')", &[]).await;
    assert_eq!(dropped.unwrap().len(), 2, "the two past days");
    let left: i64 = owner.query_one(parts, &[]).await.unwrap().get(0);
    assert_eq!(left, before, "today's and later partitions stay");
    drop(pg);
    roles.drop(&t).await;
}
