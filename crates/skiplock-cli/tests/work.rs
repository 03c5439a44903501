//! `skiplock work --exec` as a user runs it: the real binary working jobs of a
//! fresh database with a shell command per job. The worker is another
//! process, so tests wait on its effects with bounded polls of the database
//! (or of the files its commands write), never with sleeps.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use skiplock::{Client, EnqueueOptions, JobRow, JobState, NewJob};
use skiplock_testdb::TestDatabase;
use tokio::process::Child;

/// Longest wait for anything the worker does.
const WAIT: Duration = Duration::from_secs(30);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(25);

async fn fresh() -> TestDatabase {
    skiplock_testdb::fresh_database(&format!("skiplock-{}", skiplock::__private::fingerprint()), |url| async move {
        Client::connect(&url)?.migrate().await?;
        Ok(())
    })
    .await
    .expect("a fresh test database")
}

/// A directory for the files a test's commands write, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(db: &TestDatabase) -> Scratch {
        let dir = std::env::temp_dir().join(format!("skiplock-work-{}", db.name()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch(dir)
    }

    /// A file's path, as the shell should see it (the directory name has no
    /// quotes or spaces).
    fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `skiplock work ARGS` on `db`. The child is killed if dropped
/// before it exits (a failed test never leaves a worker behind).
fn work(db: &TestDatabase, args: &[&str]) -> Child {
    work_env(&[("DATABASE_URL", db.url())], args)
}

/// Starts `skiplock work ARGS` with these environment variables set.
fn work_env(env: &[(&str, &str)], args: &[&str]) -> Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_skiplock"))
        .arg("work")
        .args(args)
        .envs(env.iter().copied())
        .env_remove("SKIPLOCK_SCHEMA")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start skiplock work")
}

/// Sends SIGTERM and waits for the worker to exit; asserts it exits 0.
async fn stop(child: Child) -> Output {
    let pid = rustix::process::Pid::from_raw(child.id().expect("running") as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let out = tokio::time::timeout(WAIT, child.wait_with_output())
        .await
        .expect("the worker exits after SIGTERM")
        .expect("wait for the worker");
    assert!(out.status.success(), "exit {}; stderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// Reads the worker's stdout to its end, from now on.
fn read_all(worker: &mut Child) -> tokio::task::JoinHandle<String> {
    let mut stdout = worker.stdout.take().expect("stdout not taken yet");
    tokio::spawn(async move {
        let mut text = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut text).await.unwrap();
        String::from_utf8(text).unwrap()
    })
}

/// Sends SIGTERM and waits for the worker to exit; asserts it exits 0. For a
/// worker whose stdout was taken ([`read_all`]).
async fn terminate(mut worker: Child) {
    let pid = rustix::process::Pid::from_raw(worker.id().expect("running") as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = tokio::time::timeout(WAIT, worker.wait()).await.expect("the worker exits after SIGTERM").unwrap();
    assert!(status.success(), "{status}");
}

/// Polls `check` until it returns `Some`, for at most [`WAIT`].
async fn poll<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until job `id` reached a final state; returns it.
async fn finished(client: &Client, id: i64) -> JobRow {
    poll(&format!("job {id} to finish"), || async { client.job(id).await.unwrap().filter(|r| r.state.is_final()) })
        .await
}

async fn enqueue(client: &Client, kind: &str, args: &str, opts: EnqueueOptions) -> i64 {
    client.enqueue_job(NewJob::from_json(kind, args, opts).unwrap()).await.unwrap().id
}

#[tokio::test]
async fn each_job_runs_the_command_once_with_its_args_on_stdin_and_its_facts_in_the_environment() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let scratch = Scratch::new(&db);
    let runs = scratch.file("runs.log");
    let mut jobs = HashMap::new();
    for i in 0..50 {
        let queue = if i % 2 == 0 { "work-a" } else { "work-b" };
        let id = enqueue(&client, "echo", &format!(r#"{{"i":{i}}}"#), EnqueueOptions::new().queue(queue)).await;
        jobs.insert(id, (queue, i));
    }
    // One printf per run: one write, appended whole.
    let command = [
        r#"printf '%s %s %s %s %s %s\n' "$SKIPLOCK_JOB_ID" "$SKIPLOCK_JOB_ATTEMPT" "$SKIPLOCK_JOB_MAX_ATTEMPTS""#,
        &format!(r#""$SKIPLOCK_JOB_QUEUE" "$SKIPLOCK_JOB_KIND" "$(cat)" >> '{runs}';"#),
        r#"echo "hello from $SKIPLOCK_JOB_ID""#,
    ]
    .join(" ");
    let worker = work(&db, &["--queue", "work-a", "--queue", "work-b", "--concurrency", "8", "--exec", &command]);
    let sql = db.connect().await.unwrap();
    let sql = &sql;
    poll("50 jobs to complete", move || async move {
        let n: i64 = sql
            .query_one("SELECT count(*) FROM skiplock.jobs_archive WHERE state = 'completed'", &[])
            .await
            .unwrap()
            .get(0);
        (n == 50).then_some(())
    })
    .await;
    let out = stop(worker).await;

    let text = std::fs::read_to_string(&runs).unwrap();
    let mut seen = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(6, ' ').collect();
        let id: i64 = f[0].parse().unwrap();
        let args: serde_json::Value = serde_json::from_str(f[5]).unwrap();
        assert!(seen.insert(id, (f[1..5].join(" "), args)).is_none(), "job {id} ran twice:\n{text}");
    }
    assert_eq!(seen.len(), 50, "{text}");
    for (id, (queue, i)) in &jobs {
        let (facts, args) = &seen[id];
        assert_eq!(facts, &format!("1 20 {queue} echo"), "job {id}: attempt, max attempts, queue, kind");
        assert_eq!(args, &serde_json::json!({ "i": i }), "job {id}'s stdin");
    }

    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("working queues work-a, work-b with 8 slots each (every kind), command: {command}").as_str())
    );
    for id in jobs.keys() {
        assert!(lines.contains(&format!("[job {id}] hello from {id}").as_str()), "job {id}'s output:\n{stdout}");
    }
    assert_eq!(lines.last().copied(), Some("stopped"));
}

#[tokio::test]
async fn a_stdout_nobody_reads_holds_up_the_commands_but_never_the_heartbeats() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    const JOBS: usize = 4;
    // 10,500 lines of 100 bytes: over 1 MiB each, far beyond a pipe's buffer.
    const LINES: usize = 10_500;
    let mut ids = Vec::new();
    for _ in 0..JOBS {
        ids.push(enqueue(&client, "loud", "{}", EnqueueOptions::new()).await);
    }
    let command = format!(
        r#"awk 'BEGIN {{ for (i = 0; i < {LINES}; i++) printf "%s %06d %s\n", ENVIRON["SKIPLOCK_JOB_ID"], i, "{}" }}'"#,
        "x".repeat(100 - 20)
    );
    // Heartbeats every third of a second; stdout is piped and not read yet.
    let mut worker =
        work(&db, &["--queue", "default", "--lease", "1s", "--shutdown-grace", "100ms", "--exec", &command]);

    // Every job running, and its lease extended by heartbeats two leases past
    // where it was first seen, while stdout stays full. (The hot table
    // alone: a worker frozen in a maintenance pass may hold the archive.)
    let sql = db.connect().await.unwrap();
    let first_seen = std::cell::RefCell::new(HashMap::<i64, chrono::DateTime<chrono::Utc>>::new());
    poll("the leases of the jobs held up by stdout to be extended", || {
        let (sql, ids, first_seen) = (&sql, &ids, &first_seen);
        async move {
            let rows = sql
                .query(
                    "SELECT id, state::text, attempt, lease_expires_at FROM skiplock.jobs WHERE id = ANY($1)",
                    &[ids],
                )
                .await
                .unwrap();
            assert_eq!(rows.len(), ids.len(), "every job is still in the hot table");
            let mut extended = 0;
            for row in rows {
                let (id, state, attempt): (i64, String, i32) = (row.get(0), row.get(1), row.get(2));
                match (state.as_str(), attempt) {
                    ("available", 0) => return None, // not claimed yet
                    ("running", 1) => {}
                    other => panic!("job {id} is {other:?}, not running its first attempt"),
                }
                let expires: chrono::DateTime<chrono::Utc> = row.get(3);
                let first = *first_seen.borrow_mut().entry(id).or_insert(expires);
                if expires - first >= chrono::Duration::seconds(2) {
                    extended += 1;
                }
            }
            (extended == ids.len()).then_some(())
        }
    })
    .await;

    // Once stdout is read, every job completes in its first attempt, its
    // lines printed whole and in order.
    let reader = read_all(&mut worker);
    for id in &ids {
        let row = finished(&client, *id).await;
        assert_eq!((row.state, row.attempt), (JobState::Completed, 1), "job {id}: {:?}", row.errors);
        assert!(row.errors.is_empty(), "job {id}: {:?}", row.errors);
    }
    terminate(worker).await;
    let stdout = reader.await.unwrap();
    let mut next: HashMap<i64, usize> = ids.iter().map(|id| (*id, 0)).collect();
    for line in stdout.lines().skip(1).filter(|l| *l != "stopped") {
        let (prefix, rest) = line.split_once("] ").unwrap_or_else(|| panic!("{line:?}"));
        let id: i64 = prefix.strip_prefix("[job ").unwrap().parse().unwrap();
        let n = next.get_mut(&id).unwrap_or_else(|| panic!("{line:?}"));
        assert_eq!(rest, format!("{id} {:06} {}", *n, "x".repeat(80)), "job {id}'s line {n}");
        *n += 1;
    }
    assert!(next.values().all(|n| *n == LINES), "{next:?}");
    assert_eq!(stdout.lines().last(), Some("stopped"));
}

#[tokio::test]
async fn lines_still_held_up_by_stdout_when_the_command_exits_are_printed_all_the_same() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let scratch = Scratch::new(&db);
    let exited = scratch.file("exited");
    let id = enqueue(&client, "chatty", "{}", EnqueueOptions::new()).await;
    // About 100 KB: more than the worker's stdout pipe holds, less than that
    // and the command's own pipe together, so the command exits while part
    // of its output still waits for stdout.
    const LINES: usize = 1_000;
    let command = format!(
        r#"awk 'BEGIN {{ for (i = 0; i < {LINES}; i++) printf "%06d %s\n", i, "{}" }}'; touch '{exited}'"#,
        "x".repeat(93)
    );
    let mut worker = work(&db, &["--queue", "default", "--exec", &command]);
    poll("the command to exit", || async { std::path::Path::new(&exited).exists().then_some(()) }).await;
    // A consumer slow for longer than the worker drains a finished command's
    // pipes when nothing comes (2 s): the job must wait for its output, not
    // finish without it. (A bounded wait for something that must not happen.)
    let early = tokio::time::timeout(Duration::from_secs(3), finished(&client, id)).await;
    assert!(early.is_err(), "the job finished while its output was held up: {:?}", early.map(|r| r.state));

    let reader = read_all(&mut worker);
    assert_eq!(finished(&client, id).await.state, JobState::Completed);
    terminate(worker).await;
    let stdout = reader.await.unwrap();
    let printed: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix(&format!("[job {id}] "))).collect();
    let want: Vec<String> = (0..LINES).map(|i| format!("{i:06} {}", "x".repeat(93))).collect();
    assert_eq!(printed.len(), LINES, "lines lost");
    assert!(printed.iter().zip(&want).all(|(p, w)| p == w), "lines out of order or cut");
}

#[tokio::test]
async fn a_failing_command_fails_the_attempt_with_its_exit_status_and_stderr() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let id = enqueue(&client, "boom", "{}", EnqueueOptions::new().max_attempts(1)).await;
    // --kind: the handler is registered for this kind only.
    let worker = work(&db, &["--queue", "default", "--kind", "boom", "--exec", "echo starting; echo oops >&2; exit 3"]);
    let row = finished(&client, id).await;
    stop(worker).await;
    assert_eq!(row.state, JobState::Discarded);
    assert_eq!(row.errors.len(), 1, "{:?}", row.errors);
    let error = &row.errors[0].error;
    assert!(error.contains("oops") && error.contains("exit status 3"), "{error}");
}

#[tokio::test]
async fn a_command_killed_by_a_signal_fails_the_attempt_naming_the_signal() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let id = enqueue(&client, "boom", "{}", EnqueueOptions::new().max_attempts(1)).await;
    // The shell kills itself: the guard between it and the worker reports
    // the signal, not an exit status of its own.
    let worker = work(&db, &["--queue", "default", "--exec", "echo going >&2; kill -USR1 $$"]);
    let row = finished(&client, id).await;
    stop(worker).await;
    assert_eq!(row.state, JobState::Discarded);
    let errors: Vec<&str> = row.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(errors, vec!["killed by signal 10; stderr: going"]);
}

/// `url` with `password` in it (the test clusters trust every connection).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (auth, host) = rest.split_once('@').expect("a user");
    let user = auth.split(':').next().unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

/// The worker's password, in its URL.
const PASSWORD: &str = "s3cret-pw";
/// The worker's `PGPASSWORD`.
const PGPASSWORD: &str = "pg-s3cret";
/// Prints which credential variables the command got, one `got NAME` each.
const CREDENTIAL_VARS: &str = "env | cut -d= -f1 | grep -x -e DATABASE_URL -e PGPASSWORD | sort | sed 's/^/got /'";

#[tokio::test]
async fn credentials_stay_out_of_the_commands_environment_and_out_of_every_output() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let url = with_password(db.url(), PASSWORD);
    let id = enqueue(&client, "leak", "{}", EnqueueOptions::new().max_attempts(1)).await;
    // The command quotes the secrets on stdout and stderr (as a script
    // echoing its settings would), and its own text holds them.
    let command = format!(
        "{CREDENTIAL_VARS}; echo stdout postgres://ada:{PASSWORD}@db/x password={PASSWORD} {PGPASSWORD}; \
         echo stderr {PASSWORD} PGPASSWORD={PGPASSWORD} >&2; exit 1"
    );
    let env = [("DATABASE_URL", url.as_str()), ("PGPASSWORD", PGPASSWORD)];
    let worker = work_env(&env, &["--queue", "default", "--exec", &command]);
    let row = finished(&client, id).await;
    let out = stop(worker).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    assert_eq!(row.state, JobState::Discarded);
    let error = &row.errors[0].error;
    assert_eq!(error, "exit status 1; stderr: stderr *** PGPASSWORD=***");
    assert!(
        stderr.contains(&format!("command failed: {error}")),
        "the log line is the stored error's first line:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines.contains(&format!("[job {id}] stdout postgres://ada:***@db/x password=*** ***").as_str()),
        "{stdout}"
    );
    assert!(!stdout.contains(&format!("[job {id}] got ")), "the command got credential variables:\n{stdout}");
    for (what, text) in [("stdout", &*stdout), ("stderr", &*stderr), ("the stored error", error.as_str())] {
        assert!(!text.contains(PASSWORD) && !text.contains(PGPASSWORD), "a secret in {what}:\n{text}");
    }
}

#[tokio::test]
async fn pass_env_credentials_hands_them_to_the_command_and_still_masks_them_in_output() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let url = with_password(db.url(), PASSWORD);
    let id = enqueue(&client, "connect", "{}", EnqueueOptions::new()).await;
    let command = format!("{CREDENTIAL_VARS}; echo \"$PGPASSWORD\"");
    let env = [("DATABASE_URL", url.as_str()), ("PGPASSWORD", PGPASSWORD)];
    let worker = work_env(&env, &["--queue", "default", "--pass-env-credentials", "--exec", &command]);
    let row = finished(&client, id).await;
    let out = stop(worker).await;
    assert_eq!(row.state, JobState::Completed, "{:?}", row.errors);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    for want in
        [format!("[job {id}] got DATABASE_URL"), format!("[job {id}] got PGPASSWORD"), format!("[job {id}] ***")]
    {
        assert!(lines.contains(&want.as_str()), "{want:?} in:\n{stdout}");
    }
    assert!(!stdout.contains(PGPASSWORD), "{stdout}");
}

/// A command that starts a long `sleep` in the background and waits for it:
/// killing the shell alone would leave the sleep behind, so whether the sleep
/// dies shows whether the whole process group went. It outlasts every wait
/// here, so it cannot end by itself while a test watches.
struct Sleeper {
    pid_file: String,
}

impl Sleeper {
    fn new(scratch: &Scratch) -> Sleeper {
        Sleeper { pid_file: scratch.file("sleep.pid") }
    }

    fn command(&self) -> String {
        format!("sleep 120 & echo $! > '{}'; wait", self.pid_file)
    }

    /// The sleep's pid, once the command has written it.
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()
    }

    /// Waits until the command has started the sleep; returns its pid.
    async fn started(&self) -> u32 {
        poll("the command to start", || async { self.pid() }).await
    }
}

/// Waits until process `pid` is gone (or a zombie: nothing may reap it).
async fn killed(pid: u32) {
    let alive = || match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last parenthesis.
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    };
    poll(&format!("process {pid} to be killed"), || async { (!alive()).then_some(()) }).await;
}

#[tokio::test]
async fn a_command_past_its_timeout_is_killed_with_everything_it_started() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let scratch = Scratch::new(&db);
    let sleeper = Sleeper::new(&scratch);
    let id = enqueue(&client, "slow", "{}", EnqueueOptions::new().max_attempts(1)).await;
    // Long enough for the shell to start the sleep and write its pid first,
    // so that the check below always has a process to look at.
    let worker = work(&db, &["--queue", "default", "--timeout", "2s", "--exec", &sleeper.command()]);
    let pid = sleeper.started().await;
    let row = finished(&client, id).await;
    stop(worker).await;
    assert_eq!(row.state, JobState::Discarded);
    assert_eq!(row.errors.iter().map(|e| e.error.as_str()).collect::<Vec<_>>(), vec!["timed out after 2s"]);
    killed(pid).await;
}

#[tokio::test]
async fn a_worker_killed_with_sigkill_takes_its_command_and_everything_it_started_with_it() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let scratch = Scratch::new(&db);
    let sleeper = Sleeper::new(&scratch);
    enqueue(&client, "long", "{}", EnqueueOptions::new()).await;
    let mut worker = work(&db, &["--queue", "default", "--exec", &sleeper.command()]);
    let pid = sleeper.started().await;
    // No handler, no drop, no shutdown runs: as after an OOM kill.
    worker.start_kill().expect("SIGKILL the worker");
    let status = tokio::time::timeout(WAIT, worker.wait()).await.expect("the worker dies").unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "{status}");
    killed(pid).await;
}

#[tokio::test]
async fn what_a_command_left_running_is_killed_when_it_exits() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let scratch = Scratch::new(&db);
    let sleeper = Sleeper::new(&scratch);
    let id = enqueue(&client, "bg", "{}", EnqueueOptions::new()).await;
    let command = format!("sleep 120 & echo $! > '{}'", sleeper.pid_file);
    let worker = work(&db, &["--queue", "default", "--exec", &command]);
    let row = finished(&client, id).await;
    assert_eq!(row.state, JobState::Completed);
    let pid = sleeper.pid().expect("the command wrote the sleep's pid before it exited");
    killed(pid).await;
    stop(worker).await;
}

#[tokio::test]
async fn sigterm_during_a_long_job_kills_it_after_the_grace_and_gives_the_job_back() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let scratch = Scratch::new(&db);
    let sleeper = Sleeper::new(&scratch);
    let id = enqueue(&client, "long", "{}", EnqueueOptions::new()).await;
    let worker = work(&db, &["--queue", "default", "--shutdown-grace", "100ms", "--exec", &sleeper.command()]);
    let pid = sleeper.started().await;
    let out = stop(worker).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().last(), Some("stopped"));
    let row = client.job(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempt), (JobState::Available, 0), "released without using an attempt");
    assert!(row.errors.is_empty(), "{:?}", row.errors);
    killed(pid).await;
}

#[tokio::test]
async fn an_operator_cancel_kills_the_running_command_and_cancels_the_job() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let scratch = Scratch::new(&db);
    let sleeper = Sleeper::new(&scratch);
    let id = enqueue(&client, "long", "{}", EnqueueOptions::new()).await;
    let worker = work(&db, &["--queue", "default", "--exec", &sleeper.command()]);
    let pid = sleeper.started().await;
    assert_eq!(client.cancel(&[id]).await.unwrap(), vec![(id, skiplock::CancelResult::Cancelling)]);
    let row = finished(&client, id).await;
    stop(worker).await;
    assert_eq!(row.state, JobState::Cancelled);
    assert_eq!(row.errors.last().map(|e| e.error.as_str()), Some("killed: the job was cancelled"));
    killed(pid).await;
}

#[tokio::test]
async fn bad_flags_are_one_line_errors() {
    let db = fresh().await;
    for (args, expected) in [
        (
            &["--queue", "q", "--concurrency", "0", "--exec", "true"][..],
            "error: invalid --concurrency: must be at least 1",
        ),
        (
            &["--queue", "q", "--prefetch", "100001", "--exec", "true"],
            "error: invalid --prefetch: must be at most 100000",
        ),
        (
            &["--queue", "q", "--prefetch-wait", "0s", "--exec", "true"],
            "error: invalid --prefetch-wait: must be between 1ms and 3600s",
        ),
        (&["--queue", "q", "--prefetch-wait", "2h", "--exec", "true"], "error: invalid --prefetch-wait: must be"),
        (&["--queue", "bad name", "--exec", "true"], "error: invalid queue: "),
        (&["--queue", "q", "--timeout", "5x", "--exec", "true"], "error: invalid --timeout: "),
        (&["--queue", "q", "--exec", "  "], "error: invalid --exec: is empty"),
    ] {
        let out = tokio::time::timeout(WAIT, work(&db, args).wait_with_output()).await.expect("in time").unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(expected), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing started");
    }
}

/// `GET /metrics` of a worker started with `--metrics-listen`, parsed as
/// Prometheus parses it; `None` until it answers.
async fn scrape(port: u16) -> Option<prometheus_parse::Scrape> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "{head}");
    Some(prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("Prometheus text format"))
}

/// The value of `name` with label `queue` = `queue` (a counter or gauge).
fn value(s: &prometheus_parse::Scrape, name: &str, queue: &str) -> Option<f64> {
    s.samples.iter().find(|x| x.metric == name && x.labels.get("queue") == Some(queue)).map(|x| match &x.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => *v,
        other => panic!("{name}: not a number: {other:?}"),
    })
}

#[tokio::test]
async fn metrics_listen_serves_prometheus_text_with_each_queue_s_counts_and_lag() {
    let db = fresh().await;
    let client = Client::connect(db.url()).unwrap();
    let jobs: Vec<NewJob> =
        (0..20).map(|i| NewJob::new("m", &i, EnqueueOptions::new().queue("metered")).unwrap()).collect();
    client.enqueue_many(jobs).await.unwrap();
    // A queue nobody works: its depth comes from the leader's count.
    let idle: Vec<NewJob> =
        (0..5).map(|i| NewJob::new("m", &i, EnqueueOptions::new().queue("idle")).unwrap()).collect();
    client.enqueue_many(idle).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let mut worker = work(&db, &["--queue", "metered", "--exec", "true", "--quiet", "--metrics-listen", &addr]);
    let out = read_all(&mut worker);
    let s = poll("all 20 completed in the metrics", || async move {
        let s = scrape(port).await?;
        (value(&s, "skiplock_jobs_completed_total", "metered") == Some(20.0)).then_some(s)
    })
    .await;
    assert_eq!(value(&s, "skiplock_jobs_claimed_total", "metered"), Some(20.0));
    assert_eq!(value(&s, "skiplock_jobs_running", "metered"), Some(0.0));
    // The lag, as a histogram with buckets, by queue.
    let lag = s
        .samples
        .iter()
        .find(|x| x.metric == "skiplock_job_start_latency_seconds" && x.labels.get("queue") == Some("metered"))
        .expect("the lag histogram");
    match &lag.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert!(buckets.len() >= 10, "{buckets:?}");
            assert_eq!(buckets.last().unwrap().count, 20.0, "every start counted: {buckets:?}");
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // The depth, as the leader (this worker) counted it: never a count per scrape.
    poll("the idle queue's depth in the metrics", || async move {
        let s = scrape(port).await?;
        s.samples
            .iter()
            .any(|x| {
                x.metric == "skiplock_queue_jobs"
                    && x.labels.get("queue") == Some("idle")
                    && x.labels.get("state") == Some("available")
                    && matches!(x.value, prometheus_parse::Value::Gauge(v) if v == 5.0)
            })
            .then_some(())
    })
    .await;
    terminate(worker).await;
    let printed = out.await.unwrap();
    assert!(printed.contains(&format!("metrics on http://{addr}/metrics")), "{printed}");
}
