//! Several real worker processes on one database: they share the work and
//! run each job exactly once, and a killed worker's job is rescued and
//! finished by another. Processes are synchronised on their `ready` line and
//! on the database's state (bounded polls), never on sleeps.

use std::process::Stdio;
use std::time::{Duration, Instant};

use skiplock::{Client, EnqueueOptions, NewJob};
use skiplock_testdb::TestDatabase;
use tokio::io::{AsyncBufReadExt as _, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

/// Longest wait for a worker's `ready` line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for a worker to exit after SIGTERM.
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A fresh, migrated database, cloned from the template all tests share.
async fn fresh() -> TestDatabase {
    skiplock_testdb::fresh_database(&format!("skiplock-{}", skiplock::fingerprint()), |url| async move {
        Client::connect(&url)?.migrate().await?;
        Ok(())
    })
    .await
    .expect("a fresh test database")
}

/// The table the `log`, `block` and `sleep:MS` handlers write to.
const FLEET_LOG: &str = "CREATE TABLE public.fleet_log (
    id bigserial PRIMARY KEY, job_id bigint NOT NULL, attempt int NOT NULL,
    pid int NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz)";

/// One worker process.
struct Proc {
    child: Child,
    pid: u32,
    /// Its stdout, kept open after `ready`.
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    /// False once killed.
    alive: bool,
}

/// The worker processes of a test, killed when it ends, however it ends.
#[derive(Default)]
struct Fleet {
    procs: Vec<Proc>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.start_kill();
        }
    }
}

impl Fleet {
    /// Starts a worker with `args` and waits for its `ready` line; returns
    /// its index.
    async fn start(&mut self, db: &TestDatabase, args: &[&str]) -> usize {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_skiplock-fleet-worker"))
            .arg("--database-url")
            .arg(db.url())
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start skiplock-fleet-worker");
        let pid = child.id().expect("a pid");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        // In the fleet before we wait, so that a failed wait still kills it.
        self.procs.push(Proc { child, pid, stdout: None, alive: true });
        let line = tokio::time::timeout(READY_TIMEOUT, stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("worker {pid} not ready within {READY_TIMEOUT:?}"))
            .expect("read the worker's stdout");
        assert_eq!(line.as_deref(), Some("ready"), "worker {pid}'s first line");
        let i = self.procs.len() - 1;
        self.procs[i].stdout = Some(stdout);
        i
    }

    fn pid(&self, i: usize) -> u32 {
        self.procs[i].pid
    }

    /// Kills worker `i` at once (SIGKILL): no shutdown, no outcome written.
    async fn kill(&mut self, i: usize) {
        let p = &mut self.procs[i];
        p.child.kill().await.expect("kill the worker");
        p.alive = false;
    }

    /// Sends SIGTERM to every live worker and asserts each exits cleanly.
    async fn stop_all(&mut self) {
        let live = || self.procs.iter().filter(|p| p.alive);
        for p in live() {
            let pid = rustix::process::Pid::from_raw(p.pid as i32).expect("a pid");
            rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        }
        for p in self.procs.iter_mut().filter(|p| p.alive) {
            let status = tokio::time::timeout(EXIT_TIMEOUT, p.child.wait())
                .await
                .unwrap_or_else(|_| panic!("worker {} still running {EXIT_TIMEOUT:?} after SIGTERM", p.pid))
                .expect("wait for the worker");
            assert!(status.success(), "worker {} exited with {status}", p.pid);
            p.alive = false;
        }
    }
}

/// Polls `check` every `every` until it returns `Some`, for at most `limit`:
/// for effects of other processes, which send no events.
async fn poll<T, F, Fut>(what: &str, every: Duration, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(every).await;
    }
}

/// `n` jobs of kind `kind` on `queue`, args `{"i": i}`, enqueued in chunks.
async fn enqueue(client: &Client, queue: &str, kind: &str, n: usize) {
    const CHUNK: usize = 10_000;
    for start in (0..n).step_by(CHUNK) {
        let jobs = (start..n.min(start + CHUNK))
            .map(|i| NewJob::from_json(kind, &format!(r#"{{"i":{i}}}"#), EnqueueOptions::new().queue(queue)).unwrap())
            .collect();
        client.enqueue_many(jobs).await.expect("enqueue");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_drain_100k_jobs_exactly_once() {
    const JOBS: i64 = 100_000;
    const WORKERS: [&str; 3] = ["fleet-a", "fleet-b", "fleet-c"];
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let sql = db.connect().await.unwrap();
    let t = Instant::now();
    enqueue(&client, "fleet", "fleet.noop", JOBS as usize).await;
    println!("enqueued {JOBS} jobs in {:.1}s", t.elapsed().as_secs_f64());

    let mut fleet = Fleet::default();
    let started = Instant::now();
    for id in WORKERS {
        let args = ["--queue", "fleet", "--concurrency", "50", "--handler", "noop", "--worker-id", id];
        fleet.start(&db, &args).await;
    }
    let sql = &sql;
    poll("the hot table to empty", Duration::from_millis(100), Duration::from_secs(600), move || async move {
        let n: i64 = sql.query_one("SELECT count(*) FROM skiplock.jobs", &[]).await.unwrap().get(0);
        (n == 0).then_some(())
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    println!("3 processes x 50 slots drained {JOBS} jobs in {elapsed:.1}s: {:.0} jobs/s", JOBS as f64 / elapsed);
    fleet.stop_all().await;

    let row = sql
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE state = 'completed' AND attempt = 1), count(DISTINCT id),
                    array_agg(DISTINCT leased_by ORDER BY leased_by)
             FROM skiplock.jobs_archive",
            &[],
        )
        .await
        .unwrap();
    let (total, completed_once, distinct): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        (total, completed_once, distinct),
        (JOBS, JOBS, JOBS),
        "(archived, completed at attempt 1, distinct ids)"
    );
    let leased_by: Vec<Option<String>> = row.get(3);
    assert_eq!(leased_by, WORKERS.map(|w| Some(w.to_owned())), "every worker took a share");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_job_is_rescued_and_finished_by_another() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let sql = db.connect().await.unwrap();
    sql.batch_execute(FLEET_LOG).await.unwrap();
    let mut fleet = Fleet::default();
    // A runs no maintenance, so that B is the one to rescue the job (were A
    // the maintenance leader, B would first have to wait out its leadership).
    let a = fleet
        .start(
            &db,
            &[
                "--queue",
                "rescue",
                "--handler",
                "block",
                "--lease-ms",
                "1000",
                "--no-maintenance",
                "--worker-id",
                "fleet-a",
            ],
        )
        .await;
    let job = NewJob::from_json("fleet.block", "{}", EnqueueOptions::new().queue("rescue")).unwrap();
    let id = client.enqueue_job(job).await.unwrap().id;

    let sql = &sql;
    poll("worker A to start the job", Duration::from_millis(20), Duration::from_secs(30), move || async move {
        let n: i64 =
            sql.query_one("SELECT count(*) FROM public.fleet_log WHERE job_id = $1", &[&id]).await.unwrap().get(0);
        (n > 0).then_some(())
    })
    .await;
    fleet.kill(a).await;

    let b = fleet
        .start(&db, &["--queue", "rescue", "--handler", "log", "--rescue-ms", "200", "--worker-id", "fleet-b"])
        .await;
    let client = &client;
    let row =
        poll("worker B to finish the rescued job", Duration::from_millis(50), Duration::from_secs(30), || async {
            client.job(id).await.unwrap().filter(|r| r.state.is_final())
        })
        .await;
    fleet.stop_all().await;

    assert_eq!(row.state, skiplock::JobState::Completed);
    assert_eq!((row.attempt, row.leased_by.as_deref()), (2, Some("fleet-b")));
    assert_eq!(row.errors.len(), 1, "{:?}", row.errors);
    assert_eq!(row.errors[0].attempt, 1);
    let error = &row.errors[0].error;
    assert!(error.contains("lease expired") && error.contains("fleet-a"), "{error}");

    let runs: Vec<(i32, u32, bool)> = sql
        .query(
            "SELECT attempt, pid, finished_at IS NOT NULL FROM public.fleet_log WHERE job_id = $1 ORDER BY id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get::<_, i32>(1) as u32, r.get(2)))
        .collect();
    // A's run never ended (it was killed); B's did, as attempt 2.
    assert_eq!(runs, vec![(1, fleet.pid(a), false), (2, fleet.pid(b), true)]);
}
