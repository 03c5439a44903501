//! Fault injection with real worker processes on real PostgreSQL: workers
//! killed with SIGKILL, their connections terminated by the server, dropped
//! and stalled by a proxy, the server restarted, outcomes buffered through an
//! outage, a worker frozen past its lease, notifications off, PgBouncer in
//! between. Each test drains a queue while one fault repeats, then audits
//! every job (`skiplock_fleet::Audit`): none lost, none finished twice, every
//! completion backed by an execution, no two executions of a job at once.
//! Tests stop by themselves: drains and polls are bounded, faults stop when
//! the queue is empty. docs/GUARANTEES.md maps each guarantee to its test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{WORKER, fleet, fresh, poll};
use rustix::process::Signal;
use skiplock::{Client, JobState};
use skiplock_fleet::audit::{enqueue, enqueue_with, setup};
use skiplock_fleet::faults::{connect, crash_loop, proxy_loop, terminate_loop, watch_drain};
use skiplock_fleet::{Audit, Fleet, Proxy};
use skiplock_testdb::{Cluster, ClusterOptions, PgBouncer};
use tokio_util::sync::CancellationToken;

/// Longest drain of a test's queue.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);
/// Longest wait for a worker's next stdout line.
const LINE_LIMIT: Duration = Duration::from_secs(30);

/// Worker arguments: `queue`, the logging handler, short leases and quick
/// maintenance (a killed leader is replaced within about a second, an
/// orphaned job rescued a lease after its last heartbeat), then `more`.
fn args(queue: &str, more: &[&str]) -> Vec<String> {
    let base = ["--queue", queue, "--handler", "log", "--concurrency", "20", "--lease-ms", "2000"];
    let maintenance = ["--rescue-ms", "250", "--leader-lease-ms", "1000", "--poll-ms", "200"];
    base.iter().chain(&maintenance).chain(more).map(|s| (*s).to_owned()).collect()
}

/// A private cluster whose commits survive an immediate stop (fsync stays
/// off: the page cache outlives the server's processes).
async fn private_cluster() -> Arc<Cluster> {
    let opts = ClusterOptions { settings: vec![("synchronous_commit".into(), "on".into())], ..Default::default() };
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(opts)).await.unwrap().expect("a private cluster");
    let cluster = Arc::new(cluster);
    Client::connect(&cluster.url("postgres")).unwrap().migrate().await.expect("migrate");
    cluster
}

/// Runs `f` (blocking: pg_ctl) on `cluster` off the runtime's threads.
async fn blocking(cluster: &Arc<Cluster>, f: fn(&Cluster) -> Result<(), skiplock_testdb::Error>) {
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || f(&c)).await.unwrap().expect("pg_ctl");
}

/// A client and a connection for the database at `url`, its bookkeeping
/// tables made (the log in the same database), and `n` jobs of `kind`
/// enqueued on `queue`; their ids.
async fn seeded(url: &str, queue: &str, kind: &str, n: usize) -> (Client, tokio_postgres::Client, Vec<i64>) {
    let client = Client::connect(url).unwrap();
    let mut sql = connect(url).await.unwrap();
    setup(&sql, &sql).await.unwrap();
    let ids = enqueue(&client, &mut sql, queue, kind, n).await.unwrap();
    (client, sql, ids)
}

/// Drains 50,000 jobs with three workers reaching the queue at
/// `worker_url` (the database at `url`, or a pgbouncer in front of it)
/// while a random worker is killed every 1.5 to 3 seconds and replaced;
/// audits the result.
async fn drain_while_killing(url: &str, worker_url: &str, more: &[&str], bouncer: Option<&PgBouncer>) {
    const JOBS: usize = 50_000;
    let (_, sql, _) = seeded(url, "crash", "fleet.log", JOBS).await;
    let args = args("crash", &[&["--log-url", url], more].concat());
    let mut fleet = Fleet::new(WORKER, worker_url);
    for _ in 0..3 {
        fleet.start(&args).await.unwrap();
    }
    let stop = CancellationToken::new();
    let every = Duration::from_millis(1500)..Duration::from_millis(3000);
    let (drained, kills) =
        tokio::join!(watch_drain(url, DRAIN_LIMIT, &stop), crash_loop(&mut fleet, &sql, &args, every, &stop));
    fleet.stop_all().await.unwrap();
    let audit = Audit::run(&sql, Some(&sql)).await.unwrap();
    if let Some(b) = bouncer.filter(|_| drained.is_err() || !audit.problems(true).is_empty()) {
        println!("pgbouncer log:\n{}", b.log());
    }
    let drained = drained.unwrap_or_else(|e| panic!("{e}\n{audit}"));
    let kills = kills.unwrap();
    println!("drained {JOBS} jobs in {:.1}s with {kills} SIGKILLs: {audit}", drained.as_secs_f64());
    audit.assert_clean();
    assert_eq!((audit.enqueued, audit.completed), (JOBS as i64, JOBS as i64));
    assert!(kills >= 2, "only {kills} kills: the drain outran the faults");
}

/// Worker crash: three processes drain 50,000 jobs while a driver kills a
/// random one with SIGKILL every few seconds and starts a replacement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_every_few_seconds_lose_nothing_and_never_overlap_executions() {
    let db = fresh().await;
    drain_while_killing(db.url(), db.url(), &[], None).await;
}

/// The same through PgBouncer in transaction pooling mode: unnamed
/// statements, LISTEN on a direct connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_pgbouncer_killed_workers_lose_nothing_and_never_overlap_executions() {
    let db = fresh().await;
    let bouncer = PgBouncer::start(db.url()).expect("pgbouncer (apt-get install pgbouncer; .ci/run does)");
    let more = ["--statement-mode", "unnamed", "--listen", db.url()];
    drain_while_killing(db.url(), &bouncer.url(db.url()), &more, Some(&bouncer)).await;
}

/// Connection loss from the server's side: every connection of the workers'
/// pools and LISTEN is terminated every 200 to 600 ms during the drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_lose_nothing_and_finish_nothing_twice() {
    const JOBS: usize = 20_000;
    let db = fresh().await;
    let (_, sql, _) = seeded(db.url(), "terminate", "fleet.log", JOBS).await;
    let mut fleet = fleet(&db);
    let args = args("terminate", &[]);
    for _ in 0..3 {
        fleet.start(&args).await.unwrap();
    }
    let stop = CancellationToken::new();
    let every = Duration::from_millis(200)..Duration::from_millis(600);
    let (drained, terminated) =
        tokio::join!(watch_drain(db.url(), DRAIN_LIMIT, &stop), terminate_loop(db.url(), every, &stop));
    fleet.stop_all().await.unwrap();
    let audit = Audit::run(&sql, Some(&sql)).await.unwrap();
    let drained = drained.unwrap_or_else(|e| panic!("{e}\n{audit}"));
    println!("drained in {:.1}s with {terminated:?}: {audit}", drained.as_secs_f64());
    audit.assert_clean();
    assert_eq!(audit.completed, JOBS as i64);
    assert!(terminated.rounds >= 3 && terminated.connections > 0, "{terminated:?}: too few faults");
}

/// Drains `jobs` jobs of `max_attempts` attempts each with three workers
/// that reach the server through a proxy which alternately drops every
/// connection and stalls them all for up to 2.5 s (longer than the workers'
/// 1 s statement timeout), wherever they are: mid-statement,
/// mid-transaction, between a commit and its answer. Returns the audit.
async fn drain_through_a_breaking_proxy(queue: &str, jobs: usize, max_attempts: i32) -> Audit {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let mut sql = connect(db.url()).await.unwrap();
    setup(&sql, &sql).await.unwrap();
    let opts = skiplock::EnqueueOptions::new().queue(queue).max_attempts(max_attempts);
    enqueue_with(&client, &mut sql, "fleet.log", jobs, opts).await.unwrap();
    let proxy = Proxy::in_front_of(db.url()).await.unwrap();
    let mut fleet = Fleet::new(WORKER, proxy.url(db.url()));
    // The log goes direct: it is how executions are counted, not under test.
    let args = args(queue, &["--log-url", db.url(), "--statement-timeout-ms", "1000", "--lease-ms", "3000"]);
    for _ in 0..3 {
        fleet.start(&args).await.unwrap();
    }
    let stop = CancellationToken::new();
    let every = Duration::from_millis(500)..Duration::from_millis(1500);
    let stall = Duration::from_millis(500)..Duration::from_millis(2500);
    let (drained, faults) =
        tokio::join!(watch_drain(db.url(), DRAIN_LIMIT, &stop), proxy_loop(&proxy, every, stall, &stop));
    proxy.set_stalled(false);
    fleet.stop_all().await.unwrap();
    let audit = Audit::run(&sql, Some(&sql)).await.unwrap();
    let drained = drained.unwrap_or_else(|e| panic!("{e}\n{audit}"));
    println!("drained in {:.1}s with {faults:?} ({:?}): {audit}", drained.as_secs_f64(), proxy.stats());
    audit.assert_clean();
    assert!(faults.drops >= 1 && faults.stalls >= 1, "{faults:?}: too few faults");
    audit
}

/// Connection loss in the network (see [`drain_through_a_breaking_proxy`]),
/// with the default twenty attempts: every job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_and_stalled_connections_lose_nothing_and_finish_nothing_twice() {
    const JOBS: usize = 20_000;
    let audit = drain_through_a_breaking_proxy("network", JOBS, 20).await;
    assert_eq!(audit.completed, JOBS as i64);
}

/// The same with one attempt per job: a job may end discarded only after it
/// ran (its lease ran out during a stall). A claim whose answer was lost in
/// a drop, though the server committed it, must not use up the attempts of
/// jobs that never started: the worker gives them back before it claims
/// again, and the audit counts every discarded job without an execution.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_attempt_dropped_connections_discard_no_job_that_never_ran() {
    const JOBS: usize = 20_000;
    let audit = drain_through_a_breaking_proxy("network1", JOBS, 1).await;
    assert_eq!(audit.completed + audit.discarded, JOBS as i64, "{audit}");
    assert_eq!(audit.discarded_unrun + audit.discarded_unrun_killed, 0, "{audit}");
    assert_eq!(audit.max_attempt, 1, "{audit}");
}

/// Database restart: the queue's server is restarted with `pg_ctl restart -m
/// immediate` twice during a drain; the fleet reconnects and finishes it by
/// itself. (The execution log lives on another server.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_server_restart_mid_drain_is_survived_by_the_fleet_alone() {
    const JOBS: i64 = 20_000;
    let cluster = private_cluster().await;
    let url = cluster.url("postgres");
    let log_db = fresh().await;
    let log = log_db.connect().await.unwrap();
    let client = Client::connect(&url).unwrap();
    let mut sql = connect(&url).await.unwrap();
    setup(&sql, &log).await.unwrap();
    enqueue(&client, &mut sql, "restart", "fleet.log", JOBS as usize).await.unwrap();
    let mut fleet = Fleet::new(WORKER, &url);
    let args = args("restart", &["--log-url", log_db.url(), "--lease-ms", "3000"]);
    for _ in 0..3 {
        fleet.start(&args).await.unwrap();
    }
    let log = &log;
    for share in [4, 2] {
        // Restart once a quarter, then half, of the jobs have run.
        let ran = poll("the drain to get going", Duration::from_millis(50), DRAIN_LIMIT, || async move {
            let n: i64 = log.query_one("SELECT count(*) FROM public.fleet_log", &[]).await.unwrap().get(0);
            (n >= JOBS / share).then_some(n)
        })
        .await;
        blocking(&cluster, Cluster::restart_immediate).await;
        assert!(ran < JOBS, "the restart came after the drain: {ran} jobs had run");
    }
    let drained = watch_drain(&url, DRAIN_LIMIT, &CancellationToken::new()).await;
    fleet.stop_all().await.unwrap();
    let audit = Audit::run(&connect(&url).await.unwrap(), Some(log)).await.unwrap();
    let drained = drained.unwrap_or_else(|e| panic!("{e}\n{audit}"));
    println!("drained in {:.1}s after two restarts: {audit}", drained.as_secs_f64());
    audit.assert_clean();
    assert_eq!(audit.completed, JOBS);
}

/// Reads worker `i`'s outcome lines until `done` says enough; returns them.
async fn outcomes(fleet: &mut Fleet, i: usize, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
    let mut lines = Vec::new();
    while !done(&lines) {
        let line = fleet.next_line(i, LINE_LIMIT).await.unwrap_or_else(|e| panic!("{e}; so far {lines:?}"));
        assert!(!line.starts_with("lagged"), "the worker missed outcomes: {line}");
        lines.push(line);
    }
    lines
}

/// Counts `fleet_log` rows matching `cond`.
async fn logged(log: &tokio_postgres::Client, cond: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM public.fleet_log WHERE {cond}");
    log.query_one(&sql, &[]).await.unwrap().get(0)
}

/// Waits until `n` executions match `cond` in the log.
async fn wait_logged(log: &tokio_postgres::Client, what: &str, cond: &str, n: i64) {
    poll(what, Duration::from_millis(20), LINE_LIMIT, || async move { (logged(log, cond).await == n).then_some(()) })
        .await;
}

/// Completion buffer, written: the server goes away while twenty handlers
/// run; they finish during the outage, so their outcomes can only wait in
/// the worker; when the server is back every one is written, none dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_buffered_through_an_outage_are_written_when_the_server_returns() {
    const JOBS: usize = 20;
    let cluster = private_cluster().await;
    let url = cluster.url("postgres");
    let log_db = fresh().await;
    let log = log_db.connect().await.unwrap();
    let client = Client::connect(&url).unwrap();
    let mut sql = connect(&url).await.unwrap();
    setup(&sql, &log).await.unwrap();
    let ids = enqueue(&client, &mut sql, "buffer", "fleet.sleep", JOBS).await.unwrap();
    let mut fleet = Fleet::new(WORKER, &url);
    let args = ["--queue", "buffer", "--handler", "sleep:3000", "--concurrency", "20", "--print-outcomes"];
    let a = fleet.start(&[&args[..], &["--log-url", log_db.url()]].concat()).await.unwrap();
    wait_logged(&log, "every handler to start", "true", JOBS as i64).await;
    blocking(&cluster, Cluster::stop).await;
    let down: String = log.query_one("SELECT clock_timestamp()::text", &[]).await.unwrap().get(0);
    wait_logged(&log, "every handler to finish", "finished_at IS NOT NULL", JOBS as i64).await;
    let during = logged(&log, &format!("finished_at > '{down}'::timestamptz")).await;
    assert_eq!(during, JOBS as i64, "every handler finished while the server was down");
    blocking(&cluster, Cluster::start_again).await;

    let mut got = outcomes(&mut fleet, a, |l| l.len() == JOBS).await;
    fleet.stop_all().await.unwrap();
    let mut want: Vec<String> = ids.iter().map(|id| format!("finished {id} completed")).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want, "every buffered outcome was written");
    let audit = Audit::run(&connect(&url).await.unwrap(), Some(&log)).await.unwrap();
    audit.assert_clean();
    assert_eq!((audit.completed, audit.max_attempt, audit.executions), (JOBS as i64, 1, JOBS as i64), "{audit}");
}

/// Completion buffer, stale: a worker is cut off from the server (a proxy
/// drops its connections and refuses new ones) while ten handlers run; they
/// finish, their outcomes wait; meanwhile the leases run out and the leader
/// (another process) rescues the jobs. When the worker is back, every
/// buffered outcome is refused as stale and said so, and the jobs run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_outcomes_whose_lease_expired_are_refused_as_stale_and_the_jobs_rerun() {
    const JOBS: usize = 10;
    let db = fresh().await;
    let (client, sql, ids) = seeded(db.url(), "stale", "fleet.sleep", JOBS).await;
    let proxy = Proxy::in_front_of(db.url()).await.unwrap();
    let mut fleet = Fleet::new(WORKER, proxy.url(db.url()));
    let a = fleet
        .start(&[
            "--queue",
            "stale",
            "--handler",
            "sleep:1000",
            "--concurrency",
            "10",
            "--lease-ms",
            "3000",
            "--poll-ms",
            "200",
            "--statement-timeout-ms",
            "1000",
            "--no-maintenance",
            "--log-url",
            db.url(),
            "--print-outcomes",
        ])
        .await
        .unwrap();
    wait_logged(&sql, "every handler to start", "true", JOBS as i64).await;
    proxy.set_refusing(true);
    proxy.drop_all();
    wait_logged(&sql, "every handler to finish", "finished_at IS NOT NULL", JOBS as i64).await;
    // The leader serves another queue: it only rescues.
    let mut leader = common::fleet(&db);
    leader.start(&["--queue", "elsewhere", "--rescue-ms", "200", "--leader-lease-ms", "1000"]).await.unwrap();
    let sql = &sql;
    poll("the leader to rescue the jobs", Duration::from_millis(50), LINE_LIMIT, || async move {
        let n: i64 = sql
            .query_one("SELECT count(*) FROM skiplock.jobs WHERE state = 'available' AND attempt = 1", &[])
            .await
            .unwrap()
            .get(0);
        (n == JOBS as i64).then_some(())
    })
    .await;
    proxy.set_refusing(false);

    let completed = |l: &[String]| l.iter().filter(|l| l.ends_with(" completed")).count();
    let lines = outcomes(&mut fleet, a, |l| completed(l) == JOBS).await;
    fleet.stop_all().await.unwrap();
    leader.stop_all().await.unwrap();
    for id in &ids {
        let stale = lines.iter().position(|l| *l == format!("stale {id}"));
        let done = lines.iter().position(|l| *l == format!("finished {id} completed"));
        assert!(matches!((stale, done), (Some(s), Some(d)) if s < d), "job {id}: {lines:?}");
    }
    let audit = Audit::run(sql, Some(sql)).await.unwrap();
    audit.assert_clean();
    assert_eq!((audit.completed, audit.max_attempt, audit.executions), (JOBS as i64, 2, 2 * JOBS as i64), "{audit}");
    let row = client.job(ids[0]).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempt), (JobState::Completed, 2));
    assert!(row.errors[0].error.contains("lease expired"), "{:?}", row.errors);
}

/// Slow handler past its lease: worker A is frozen (SIGSTOP, as a long GC
/// pause or a suspended VM would) inside a job; its lease runs out, B
/// rescues the job and runs it again. When A thaws, its late outcome for the
/// first attempt is refused as stale; B's stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_frozen_past_its_lease_is_rerun_elsewhere_and_its_late_outcome_refused() {
    let db = fresh().await;
    let (client, sql, ids) = seeded(db.url(), "slow", "fleet.sleep", 1).await;
    let id = ids[0];
    let mut fleet = fleet(&db);
    let a = fleet
        .start(&[
            "--queue",
            "slow",
            "--handler",
            "sleep:1000",
            "--lease-ms",
            "2000",
            "--no-maintenance",
            "--worker-id",
            "fleet-a",
            "--print-outcomes",
        ])
        .await
        .unwrap();
    wait_logged(&sql, "A to start the job", "true", 1).await;
    fleet.signal(a, Signal::STOP).unwrap();
    let b = fleet
        .start(&[
            "--queue",
            "slow",
            "--handler",
            "log",
            "--rescue-ms",
            "200",
            "--leader-lease-ms",
            "1000",
            "--worker-id",
            "fleet-b",
        ])
        .await
        .unwrap();
    let client = &client;
    let row = poll("B to finish the rescued job", Duration::from_millis(50), LINE_LIMIT, || async move {
        client.job(id).await.unwrap().filter(|r| r.state.is_final())
    })
    .await;
    fleet.signal(a, Signal::CONT).unwrap();
    let lines = outcomes(&mut fleet, a, |l| !l.is_empty()).await;
    assert_eq!(lines, [format!("stale {id}")], "A's outcome for attempt 1 is refused");
    fleet.stop_all().await.unwrap();

    assert_eq!((row.state, row.attempt, row.leased_by.as_deref()), (JobState::Completed, 2, Some("fleet-b")));
    let after = client.job(id).await.unwrap().unwrap();
    assert_eq!((after.state, after.attempt, after.finished_at), (row.state, row.attempt, row.finished_at), "unchanged");
    assert!(
        row.errors[0].error.contains("lease expired") && row.errors[0].error.contains("fleet-a"),
        "{:?}",
        row.errors
    );
    let runs: Vec<(i32, i32)> = sql
        .query("SELECT attempt, pid FROM public.fleet_log WHERE job_id = $1 ORDER BY attempt", &[&id])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(runs, [(1, fleet.pid(a) as i32), (2, fleet.pid(b) as i32)]);
}

/// NOTIFY lost: three workers that never LISTEN drain jobs enqueued in five
/// waves while they idle, by polling alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_notifications_off_polling_alone_drains_every_job() {
    const WAVES: usize = 5;
    const WAVE: usize = 2_000;
    let db = fresh().await;
    let (client, mut sql, _) = seeded(db.url(), "quiet", "fleet.log", 0).await;
    let mut fleet = fleet(&db);
    let args = args("quiet", &["--listen", "off", "--poll-ms", "250"]);
    for _ in 0..3 {
        fleet.start(&args).await.unwrap();
    }
    let listening: i64 = sql
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(listening, 0, "no worker LISTENs");
    for _ in 0..WAVES {
        enqueue(&client, &mut sql, "quiet", "fleet.log", WAVE).await.unwrap();
        watch_drain(db.url(), DRAIN_LIMIT, &CancellationToken::new()).await.unwrap();
    }
    fleet.stop_all().await.unwrap();
    let audit = Audit::run(&sql, Some(&sql)).await.unwrap();
    println!("{audit}");
    audit.assert_clean();
    assert_eq!(audit.completed, (WAVES * WAVE) as i64);
}
