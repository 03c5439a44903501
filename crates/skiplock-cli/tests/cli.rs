//! The `skiplock` binary as a user runs it, against a real PostgreSQL: each
//! test gets a fresh migrated database from `skiplock-testdb`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStringExt as _;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use skiplock_testdb::TestDatabase;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// Longest any one run of the binary may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Shared with the library's tests: the template changes with the migrations.
fn template_key() -> String {
    format!("skiplock-{}", skiplock::__private::fingerprint())
}

async fn fresh() -> TestDatabase {
    skiplock_testdb::fresh_database(&template_key(), |url| async move {
        skiplock::Client::connect(&url)?.migrate().await?;
        Ok(())
    })
    .await
    .expect("a fresh test database")
}

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success; returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success; stderr: {}", self.stderr);
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Asserts exit status 1 and exactly one `error: ` line on stderr; returns it.
    fn error_line(&self) -> &str {
        assert_eq!(self.code, Some(1), "expected failure; stdout: {} stderr: {}", self.stdout, self.stderr);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected one line on stderr: {:?}", self.stderr);
        assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
        lines[0]
    }
}

/// A command for the binary with a clean environment: no database unless given.
fn command(url: Option<&str>, args: &[OsString]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_skiplock"));
    cmd.env_remove("DATABASE_URL").env_remove("SKIPLOCK_SCHEMA").env_remove("RUST_LOG");
    if let Some(url) = url {
        cmd.env("DATABASE_URL", url);
    }
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

async fn run_with(url: Option<&str>, args: &[OsString], stdin: Option<&[u8]>) -> Run {
    let mut cmd = command(url, args);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("run skiplock");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input).await.expect("write stdin");
    }
    let out = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output()).await.expect("in time").expect("output");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Runs `skiplock ARGS` against `db`.
async fn sk(db: &TestDatabase, args: &[&str]) -> Run {
    run_with(Some(db.url()), &os(args), None).await
}

/// Runs `skiplock ARGS` against `db` with `input` on stdin.
async fn sk_in(db: &TestDatabase, args: &[&str], input: &str) -> Run {
    run_with(Some(db.url()), &os(args), Some(input.as_bytes())).await
}

/// Enqueues one job from flags; returns its id.
async fn enqueue(db: &TestDatabase, args: &[&str]) -> i64 {
    let mut all = vec!["enqueue", "--json"];
    all.extend_from_slice(args);
    sk(db, &all).await.json()["id"].as_i64().expect("an id")
}

/// `stats --json`'s total count over every state.
async fn total_jobs(db: &TestDatabase) -> i64 {
    let stats = sk(db, &["stats", "--json"]).await.json();
    stats["total"].as_object().unwrap().iter().filter_map(|(k, v)| (k != "queue").then(|| v.as_i64()).flatten()).sum()
}

#[tokio::test]
async fn migrate_is_idempotent_and_goes_down_only_when_confirmed() {
    // Every migration the library knows, so the test follows new ones.
    let latest = skiplock::MIGRATIONS.last().unwrap().version;
    let versions: Vec<i32> = skiplock::MIGRATIONS.iter().map(|m| m.version).collect();
    let names: Vec<String> = skiplock::MIGRATIONS.iter().map(|m| format!("{:04}_{}", m.version, m.name)).collect();
    let db = fresh().await;
    for _ in 0..2 {
        let r = sk(&db, &["migrate", "--json"]).await.json();
        assert_eq!(r, json!({"schema": "skiplock", "direction": "up", "applied": [], "version": latest}));
    }
    assert!(sk(&db, &["migrate"]).await.ok().contains(&format!("at version {latest}; nothing to do")));

    let refused = sk(&db, &["migrate", "--to", "0"]).await;
    assert!(refused.error_line().contains("pass --yes"), "{refused:?}");
    let beyond = (latest + 3).to_string();
    assert!(sk(&db, &["migrate", "--to", &beyond]).await.error_line().contains(&format!("invalid --to: {beyond}")));

    let down = sk(&db, &["migrate", "--to", "0", "--yes", "--json"]).await.json();
    assert_eq!(down["direction"], "down");
    assert_eq!(down["applied"], json!(versions.iter().rev().collect::<Vec<_>>()));
    assert_eq!(down["version"], 0);
    let unmigrated = sk(&db, &["stats"]).await;
    assert!(unmigrated.error_line().contains("is not migrated (run `skiplock migrate`)"), "{unmigrated:?}");

    let up = sk(&db, &["migrate"]).await;
    let said = format!("applied {} in schema \"skiplock\"; now at version {latest}", names.join(", "));
    assert!(up.ok().contains(&said), "{up:?}");
    assert_eq!(sk(&db, &["migrate", "--json"]).await.json()["applied"], json!([]));

    // A second queue in a schema of its own.
    let other = sk(&db, &["--schema", "jobs_b", "migrate", "--json"]).await.json();
    assert_eq!((other["schema"].as_str(), other["applied"].clone()), (Some("jobs_b"), json!(versions)));
}

#[tokio::test]
async fn enqueue_one_job_from_flags_and_show_it() {
    let db = fresh().await;
    let flags = [
        "--kind",
        "email",
        "--queue",
        "mail",
        "--args",
        r#"{"to": "ada@example.com", "n": [1, 2]}"#,
        "--priority",
        "3",
        "--delay",
        "5m",
        "--max-attempts",
        "4",
        "--unique-key",
        "welcome:1",
        "--tag",
        "a",
        "--tag",
        "b",
        "--meta",
        r#"{"source": "test"}"#,
    ];
    let first = sk(&db, &[&["enqueue", "--json"][..], &flags].concat()).await.json();
    assert_eq!(first["inserted"], true);
    let id = first["id"].as_i64().unwrap();

    let job = sk(&db, &["jobs", "show", &id.to_string(), "--json"]).await.json();
    assert_eq!(job["id"], id);
    assert_eq!(job["kind"], "email");
    assert_eq!(job["queue"], "mail");
    assert_eq!(job["args"], json!({"to": "ada@example.com", "n": [1, 2]}));
    assert_eq!(job["state"], "scheduled");
    assert_eq!(job["priority"], 3);
    assert_eq!(job["attempt"], 0);
    assert_eq!(job["max_attempts"], 4);
    assert_eq!(job["unique_key"], "welcome:1");
    assert_eq!(job["tags"], json!(["a", "b"]));
    assert_eq!(job["meta"], json!({"source": "test"}));
    assert_eq!(job["errors"], json!([]));
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(job[k].as_str().unwrap()).unwrap();
    let delay = (at("run_at") - at("created_at")).num_seconds();
    assert!((295..=305).contains(&delay), "run_at is {delay}s after created_at");

    // The same unique key again inserts nothing and names the holder.
    let again = sk(&db, &[&["enqueue", "--json"][..], &flags].concat()).await.json();
    assert_eq!(again, json!({"id": id, "inserted": false}));
    let text = sk(&db, &[&["enqueue"][..], &flags].concat()).await;
    assert!(text.ok().contains(&format!("job {id} already holds this unique key")), "{text:?}");

    // Defaults: queue `default`, args {}, priority 0, 20 attempts, available now.
    let plain = enqueue(&db, &["--kind", "ping"]).await;
    let job = sk(&db, &["jobs", "show", &plain.to_string(), "--json"]).await.json();
    assert_eq!(
        (&job["queue"], &job["args"], &job["priority"], &job["max_attempts"], &job["state"]),
        (&json!("default"), &json!({}), &json!(0), &json!(20), &json!("available"))
    );

    let shown = sk(&db, &["jobs", "show", &id.to_string()]).await;
    let shown = shown.ok();
    for want in ["kind          email", "attempt       0 of 4", "args\n  {\n    \"n\": [", "errors: none"] {
        assert!(shown.contains(want), "{want:?} in:\n{shown}");
    }

    let listed = sk(&db, &["jobs", "list", "--json"]).await.json();
    let ids: Vec<i64> = listed.as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![plain, id], "newest first");
    let mail = sk(&db, &["jobs", "list", "--queue", "mail", "--state", "scheduled"]).await;
    assert!(mail.ok().contains("email") && !mail.stdout.contains("ping"), "{mail:?}");
    let page = sk(&db, &["jobs", "list", "--before", &plain.to_string(), "--json"]).await.json();
    assert_eq!(page.as_array().unwrap().len(), 1);

    let missing = sk(&db, &["jobs", "show", "987654321"]).await;
    assert_eq!(missing.error_line(), "error: job 987654321 not found");
}

#[tokio::test]
async fn enqueue_a_thousand_jobs_from_stdin() {
    let db = fresh().await;
    // Bare args of --kind (objects, numbers, strings) mixed with job objects
    // of their own kind and queue, and blank lines.
    let mut input = String::new();
    for i in 0..1000 {
        match i % 4 {
            0 => input.push_str(&format!(r#"{{"kind": "resize", "queue": "media", "args": {{"image": {i}}}}}"#)),
            1 => input.push_str(&format!(r#"{{"user": {i}}}"#)),
            2 => input.push_str(&i.to_string()),
            _ => input.push_str(&format!(r#""user-{i}""#)),
        }
        input.push_str(if i % 100 == 0 { "\n\n  \n" } else { "\n" });
    }
    let r =
        sk_in(&db, &["enqueue", "--stdin", "--kind", "welcome", "--queue", "bulk", "--json", "--batch", "300"], &input)
            .await
            .json();
    assert_eq!(r, json!({"inserted": 1000, "duplicates": 0}));

    let stats = sk(&db, &["stats", "--json"]).await.json();
    let queues: Vec<(String, i64)> = stats["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["queue"].as_str().unwrap().to_owned(), q["available"].as_i64().unwrap()))
        .collect();
    assert_eq!(queues, vec![("bulk".to_owned(), 750), ("media".to_owned(), 250)]);
    assert_eq!(stats["total"]["available"], 1000);
    assert!(stats["total"]["oldest_available_secs"].as_f64().is_some());
    let table = sk(&db, &["stats"]).await;
    assert!(table.ok().lines().any(|l| l.starts_with("bulk") && l.contains("750")), "{table:?}");

    let bare = sk(&db, &["jobs", "list", "--kind", "welcome", "--limit", "4", "--json"]).await.json();
    let args: Vec<Value> = bare.as_array().unwrap().iter().map(|j| j["args"].clone()).collect();
    assert_eq!(args, vec![json!("user-999"), json!(998), json!({"user": 997}), json!("user-995")]);

    // Without --kind, stdin is read when it is not a terminal; every line is a
    // job object. Unique keys count duplicates; delay_ms schedules.
    let objects = [
        r#"{"kind": "report", "unique_key": "r-1", "tags": ["x"], "meta": {"by": "cli"}}"#,
        r#"{"kind": "report", "unique_key": "r-1"}"#,
        r#"{"kind": "report", "delay_ms": 60000, "priority": 9, "max_attempts": 2, "queue": "slow"}"#,
    ];
    let r = sk_in(&db, &["enqueue"], &objects.join("\n")).await;
    assert!(r.ok().starts_with("inserted 2 jobs, 1 duplicate"), "{r:?}");
    let slow = sk(&db, &["jobs", "list", "--queue", "slow", "--json"]).await.json();
    assert_eq!((&slow[0]["state"], &slow[0]["priority"]), (&json!("scheduled"), &json!(9)));
    assert_eq!(total_jobs(&db).await, 1002);

    // A bad line found by the library after earlier batches went in says so.
    let input = "{\"kind\": \"x\"}\n{\"kind\": \"x\"}\n{\"kind\": \"x\", \"queue\": \"-x\"}\n";
    let r = sk_in(&db, &["enqueue", "--batch", "2"], input).await;
    assert_eq!(
        r.error_line(),
        "error: line 3: invalid queue: \"-x\" must start with a letter or digit \
         (lines 1 to 2 were enqueued before: 2 inserted, 0 duplicates)"
    );
    assert_eq!(total_jobs(&db).await, 1004);
}

/// Runs `skiplock ARGS` against `db` with stdin a file holding `contents`
/// (as `< file` gives it): data is waiting on it before the binary starts.
async fn sk_file(db: &TestDatabase, args: &[&str], contents: &str) -> Run {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("skiplock-cli-{}-{n}.jsonl", db.name()));
    std::fs::write(&path, contents).unwrap();
    let mut cmd = command(Some(db.url()), &os(args));
    cmd.stdin(std::fs::File::open(&path).unwrap());
    let out = tokio::time::timeout(RUN_TIMEOUT, cmd.output()).await.expect("in time").expect("output");
    let _ = std::fs::remove_file(&path);
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The args of every job of `kind`, oldest first.
async fn args_of(db: &TestDatabase, kind: &str) -> Vec<Value> {
    let jobs = sk(db, &["jobs", "list", "--kind", kind, "--json"]).await.json();
    jobs.as_array().unwrap().iter().rev().map(|j| j["args"].clone()).collect()
}

#[tokio::test]
async fn enqueue_reads_stdin_when_its_help_says_and_never_drops_it() {
    let db = fresh().await;
    // The help's own example: one args document per line, all of one kind.
    let r =
        sk_in(&db, &["enqueue", "--kind", "welcome", "--queue", "mail", "--json"], "{\"user\":1}\n\n[2]\n\"three\"\n")
            .await;
    assert_eq!(r.json(), json!({"inserted": 3, "duplicates": 0}));
    assert_eq!(args_of(&db, "welcome").await, vec![json!({"user": 1}), json!([2]), json!("three")]);

    // A one-job flag while data waits on stdin: refused, naming the flag.
    let both = "error: --args gives one job's args, but stdin has data waiting: drop --args to enqueue a job per \
                line, or redirect stdin from /dev/null for the one job";
    assert_eq!(sk_file(&db, &["enqueue", "--kind", "k", "--args", "{}"], "{\"a\":1}\n").await.error_line(), both);
    let r = sk_file(&db, &["enqueue", "--kind", "k", "--unique-key", "u"], "{\"a\":1}\n").await;
    assert!(r.error_line().starts_with("error: --unique-key is for one job, but stdin has data waiting"), "{r:?}");
    assert_eq!(total_jobs(&db).await, 3, "nothing enqueued");

    // --kind alone with a stdin that holds no line: one job from the flags,
    // or none from stdin? Refused, naming the flags that say which.
    let empty = "error: stdin is empty: with --kind and no --args, each line of stdin is a job's args; pass \
                 --args '{}' to enqueue one job, or --stdin to read stdin even when it is empty";
    assert_eq!(sk_in(&db, &["enqueue", "--kind", "k"], "").await.error_line(), empty);
    assert_eq!(sk_in(&db, &["enqueue", "--kind", "k"], "\n  \n").await.error_line(), empty);
    assert_eq!(sk_file(&db, &["enqueue", "--kind", "k"], "").await.error_line(), empty);
    assert_eq!(total_jobs(&db).await, 3, "nothing enqueued");
    assert!(sk_in(&db, &["enqueue", "--kind", "k", "--stdin"], "").await.ok().starts_with("inserted 0 jobs"));

    // One job from the flags: stdin is /dev/null (nothing can be piped), or
    // --args with a stdin that holds nothing.
    let one = |r: Run| r.json()["inserted"] == json!(true);
    assert!(one(run_with(Some(db.url()), &os(&["enqueue", "--json", "--kind", "one"]), None).await));
    assert!(one(sk_in(&db, &["enqueue", "--json", "--kind", "one", "--args", "{\"n\":2}"], "").await));
    assert!(one(sk_file(&db, &["enqueue", "--json", "--kind", "one", "--args", "{\"n\":3}"], "").await));
    assert_eq!(args_of(&db, "one").await, vec![json!({}), json!({"n": 2}), json!({"n": 3})]);

    // Without --kind, /dev/null holds no job objects: the kind is missing.
    let r = run_with(Some(db.url()), &os(&["enqueue"]), None).await;
    assert!(r.error_line().starts_with("error: missing --kind: "), "{r:?}");
    assert_eq!(total_jobs(&db).await, 6);
}

#[tokio::test]
async fn bad_input_is_one_line_naming_the_field_and_inserts_nothing() {
    let db = fresh().await;
    fn kinded<'a>(more: &[&'a str]) -> Vec<&'a str> {
        [&["enqueue", "--kind", "k"][..], more].concat()
    }
    let cases: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (kinded(&["--args", "{bad"]), None, "error: invalid --args: expected JSON"),
        (kinded(&["--queue", "\"; drop table"]), None, "error: invalid queue: \"\\\"; drop table\" contains '\"'"),
        (kinded(&["--max-attempts", "-3"]), None, "error: invalid max_attempts: -3 is out of range"),
        (kinded(&["--priority", "99"]), None, "error: invalid priority: 99 is out of range"),
        (kinded(&["--delay", "-5s"]), None, "error: invalid --delay: \"-5s\" is negative"),
        (kinded(&["--delay", "soon"]), None, "error: invalid --delay: \"soon\" is not a duration"),
        (kinded(&["--run-at", "9999-01-01T00:00:00Z"]), None, "error: invalid run_at: 9999-01-01"),
        (kinded(&["--run-at", "tomorrow"]), None, "error: invalid --run-at: \"tomorrow\""),
        (kinded(&["--meta", "[1]"]), None, "error: invalid --meta: expected a JSON object"),
        (kinded(&["--tag", ""]), None, "error: invalid tags[0]: must not be empty"),
        (vec!["enqueue", "--kind", "bad kind"], None, "error: invalid kind: \"bad kind\" contains ' '"),
        (
            vec!["enqueue"],
            Some("{\"kind\": \"a\"}\n\n{not json\n"),
            "error: line 3: invalid job: expected a JSON object",
        ),
        (vec!["enqueue", "--stdin", "--kind", "k"], Some("{}\n[1,\n"), "error: line 2: invalid args: expected JSON"),
        (vec!["enqueue"], Some("{\"kind\": \"a\", \"colour\": \"red\"}"), "error: line 1: unknown field \"colour\""),
        (vec!["enqueue"], Some("{\"kind\": \"a\"}\n1\n"), "error: line 2: invalid job: expected a JSON object"),
        (vec!["enqueue"], Some("{\"args\": {}}\n"), "error: line 1: missing kind"),
        // Found by the library when the batch is inserted, and mapped back to the line.
        (
            vec!["enqueue"],
            Some("{\"kind\": \"a\"}\n{\"kind\": \"a\"}\n\n{\"kind\": \"a\", \"queue\": \"a b\"}\n"),
            "error: line 4: invalid queue: \"a b\" contains ' '",
        ),
        (vec!["enqueue", "--stdin", "--args", "{}"], Some("{}"), "error: --args names one job's args"),
        (vec!["jobs", "list", "--state", "finished"], None, "error: invalid state: \"finished\" is not one of"),
        (vec!["jobs", "list", "--limit", "5000"], None, "error: invalid limit: 5000 is out of range"),
        (vec!["queues", "pause", "bad queue"], None, "error: invalid queue: \"bad queue\" contains ' '"),
        (vec!["--schema", "Bad-Schema", "stats"], None, "error: invalid schema: \"Bad-Schema\""),
    ];
    for (args, stdin, want) in &cases {
        let r = run_with(Some(db.url()), &os(args), stdin.map(str::as_bytes)).await;
        let line = r.error_line();
        assert!(line.starts_with(want), "{args:?}: got {line:?}, want {want:?}");
    }

    // Invalid UTF-8 in an argument.
    let mut args = os(&["enqueue", "--kind", "k", "--queue"]);
    args.push(OsString::from_vec(b"mail\xff".to_vec()));
    let r = run_with(Some(db.url()), &args, None).await;
    assert!(r.error_line().starts_with("error: invalid --queue: is not valid UTF-8"), "{r:?}");
    let r = run_with(Some(db.url()), &os(&["enqueue"]), Some(b"{\"kind\": \"a\xff\"}")).await;
    assert_eq!(r.error_line(), "error: line 1: is not valid UTF-8");

    assert_eq!(total_jobs(&db).await, 0, "nothing was inserted");
    assert_eq!(sk(&db, &["queues", "list", "--json"]).await.json(), json!([]));

    // Usage errors are clap's, with status 2.
    assert_eq!(sk(&db, &["enqueue", "--kind", "k", "--priority", "high"]).await.code, Some(2));
    assert_eq!(sk(&db, &["jobs", "retry"]).await.code, Some(2));
}

#[tokio::test]
async fn missing_or_unreachable_database_is_one_line() {
    let r = run_with(None, &os(&["stats"]), None).await;
    assert_eq!(r.error_line(), "error: no database: pass --database-url or set DATABASE_URL");

    // Port 1 on loopback refuses connections; the password must not show.
    let url = "postgres://ada:s3cret-pw@127.0.0.1:1/nowhere";
    let r = run_with(None, &os(&["--database-url", url, "jobs", "list"]), None).await;
    let line = r.error_line();
    assert!(line.contains("127.0.0.1:1/nowhere") && !line.contains("s3cret"), "{line}");

    let r = run_with(None, &os(&["stats", "--database-url", "postgres://ada:s3cret-pw@[::1"]), None).await;
    let line = r.error_line();
    assert!(line.starts_with("error: invalid database_url") && !line.contains("s3cret"), "{line}");
}

/// Every command connects through the library, so with the library's TLS: `verify-full`
/// works, and a wrong CA or `sslmode=disable` against a TLS-only server is one line naming
/// the cause and the server.
#[tokio::test]
async fn over_tls_commands_work_and_tls_errors_are_one_line_naming_the_cause() {
    let opts = skiplock_testdb::ClusterOptions { tls: Some(Default::default()), ..Default::default() };
    let cluster = tokio::task::spawn_blocking(move || skiplock_testdb::Cluster::start(opts)).await.unwrap().unwrap();
    let url = cluster.url("postgres");
    run_with(Some(&url), &os(&["migrate"]), None).await.ok();
    let stats = run_with(Some(&url), &os(&["--json", "stats"]), None).await.json();
    assert!(stats.is_object(), "{stats}");

    let wrong = cluster.socket_dir().join("unrelated-ca.crt");
    skiplock_testdb::write_unrelated_ca(&wrong).unwrap();
    let place = format!("127.0.0.1:{}/postgres", cluster.port());
    let bad_ca = format!("postgres://ada:s3cret-pw@{place}?sslmode=verify-full&sslrootcert={}", wrong.display());
    let r = run_with(Some(&bad_ca), &os(&["jobs", "list"]), None).await;
    assert_eq!(
        r.error_line(),
        format!(
            "error: {place}: TLS: the server's certificate is not signed by a CA in \
             sslrootcert ({}) (sslmode=verify-full, host 127.0.0.1)",
            wrong.display()
        )
    );
    let plain = format!("postgres://ada:s3cret-pw@{place}?sslmode=disable");
    let r = run_with(Some(&plain), &os(&["stats"]), None).await;
    let line = r.error_line();
    assert!(line.contains("set sslmode=require or stronger") && line.contains(&place), "{line}");
    assert!(!line.contains("s3cret"), "{line}");
}

/// libpq's default root file, `~/.postgresql/root.crt`: found by `verify-full` without
/// `sslrootcert`, and checked under `require` when it exists (there, a CA that did not sign
/// the server's certificate refuses the connection, naming the file).
#[tokio::test]
async fn the_default_root_file_under_home_is_used_as_libpq_uses_it() {
    let opts = skiplock_testdb::ClusterOptions { tls: Some(Default::default()), ..Default::default() };
    let cluster = tokio::task::spawn_blocking(move || skiplock_testdb::Cluster::start(opts)).await.unwrap().unwrap();
    let home = cluster.socket_dir().join("home");
    std::fs::create_dir_all(home.join(".postgresql")).unwrap();
    let root = home.join(".postgresql/root.crt");
    let run = |query: &'static str| {
        let mut cmd = command(None, &os(&["--json", "stats"]));
        cmd.env("HOME", &home)
            .env("DATABASE_URL", format!("postgres://postgres@127.0.0.1:{}/postgres?{query}", cluster.port()));
        async move {
            let out = cmd.stdin(Stdio::null()).output().await.unwrap();
            Run {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
    };
    run_with(Some(&cluster.url("postgres")), &os(&["migrate"]), None).await.ok();
    // No root file: verify-full refuses to start, naming the default path.
    let line = run("sslmode=verify-full").await.error_line().to_owned();
    assert!(line.contains(&format!("root certificate file \"{}\" does not exist", root.display())), "{line}");
    // The cluster's CA there: verify-full connects.
    std::fs::copy(cluster.ca_cert().unwrap(), &root).unwrap();
    run("sslmode=verify-full").await.json();
    // Another CA there: require checks the chain, as libpq does when the file exists.
    skiplock_testdb::write_unrelated_ca(&root).unwrap();
    let line = run("sslmode=require").await.error_line().to_owned();
    assert!(line.contains(&format!("not signed by a CA in sslrootcert ({})", root.display())), "{line}");
    // And prefer too; only disable is left alone by it (and refused by the server).
    let line = run("").await.error_line().to_owned();
    assert!(line.contains("not signed by a CA"), "{line}");
}

#[tokio::test]
async fn a_database_url_that_is_not_utf8_is_named_and_never_shown() {
    let url = OsString::from_vec(b"postgres://ada:p\xe9ss-s3cret@127.0.0.1:1/app".to_vec());
    let mut cmd = command(None, &os(&["stats"]));
    cmd.env("DATABASE_URL", &url).stdin(Stdio::null());
    let out = cmd.output().await.unwrap();
    let r = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert_eq!(r.error_line(), "error: invalid DATABASE_URL: is not valid UTF-8");

    let mut args = os(&["stats", "--database-url"]);
    args.push(url);
    let r = run_with(None, &args, None).await;
    assert_eq!(r.error_line(), "error: invalid --database-url: is not valid UTF-8");
}

#[tokio::test]
async fn cancel_and_retry_round_trip() {
    let db = fresh().await;
    let waiting = enqueue(&db, &["--kind", "k", "--queue", "work", "--priority", "5"]).await;
    let running = enqueue(&db, &["--kind", "k", "--queue", "work", "--priority", "0"]).await;
    let later = enqueue(&db, &["--kind", "k", "--queue", "work", "--delay", "1h"]).await;
    let client = skiplock::Client::connect(db.url()).unwrap();
    let claimed = client.claim("work", 1, Duration::from_secs(60), "test").await.unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![running]);

    let (w, r, unknown) = (waiting.to_string(), running.to_string(), "987654321");
    let out = sk(&db, &["jobs", "cancel", &w, &r, unknown, "--json"]).await;
    assert_eq!(out.error_line(), "error: 1 of 3 jobs could not be cancelled");
    let results: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        results,
        json!([
            {"id": waiting, "result": "cancelled"},
            {"id": running, "result": "cancelling"},
            {"id": 987654321, "result": "not_found"},
        ])
    );
    let state = |v: Value| v["state"].as_str().unwrap().to_owned();
    assert_eq!(state(sk(&db, &["jobs", "show", &w, "--json"]).await.json()), "cancelled");

    // A running job is not retried; the worker learns of the cancel and stops.
    let out = sk(&db, &["jobs", "retry", &r]).await;
    assert_eq!(out.error_line(), "error: 1 of 1 jobs could not be retried");
    assert_eq!(out.stdout.trim(), format!("job {running}: running (not retried: wait for it to end, or cancel it)"));
    let beat = client.heartbeat(&[claimed[0].lease], Duration::from_secs(60)).await.unwrap();
    assert_eq!(beat.cancel_requested, vec![running]);
    let lease = claimed[0].lease;
    let outcome = skiplock::Outcome::Cancelled(Some("told to".into()));
    client.finish(&[skiplock::Finish { lease, outcome }]).await.unwrap();
    let shown = sk(&db, &["jobs", "show", &r, "--json"]).await.json();
    assert_eq!(state(shown), "cancelled");

    // Retry brings finished jobs back and runs scheduled ones now.
    let out = sk(&db, &["jobs", "retry", &w, &r, &later.to_string()]).await;
    let expected = format!("job {waiting}: retried\njob {running}: retried\njob {later}: retried\n");
    assert_eq!(out.ok(), expected);
    let available = sk(&db, &["jobs", "list", "--state", "available", "--json"]).await.json();
    let mut ids: Vec<i64> = available.as_array().unwrap().iter().map(|j| j["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec![waiting, running, later]);
    let again = sk(&db, &["jobs", "retry", &w]).await;
    assert_eq!(again.ok().trim(), format!("job {waiting}: already available"));
    let text = sk(&db, &["jobs", "cancel", &later.to_string()]).await;
    assert_eq!(text.ok().trim(), format!("job {later}: cancelled"));
}

#[tokio::test]
async fn queues_pause_and_resume() {
    let db = fresh().await;
    enqueue(&db, &["--kind", "k", "--queue", "mail"]).await;
    let client = skiplock::Client::connect(db.url()).unwrap();

    assert_eq!(sk(&db, &["queues", "pause", "mail", "--json"]).await.json(), json!({"queue": "mail", "paused": true}));
    let queues = sk(&db, &["queues", "list", "--json"]).await.json();
    assert_eq!(
        (&queues[0]["name"], &queues[0]["paused"], &queues[0]["available"]),
        (&json!("mail"), &json!(true), &json!(1))
    );
    assert!(sk(&db, &["queues", "list"]).await.ok().lines().any(|l| l.starts_with("mail") && l.contains("paused")));
    assert!(client.claim("mail", 10, Duration::from_secs(30), "t").await.unwrap().is_empty(), "paused");

    assert!(sk(&db, &["queues", "resume", "mail"]).await.ok().starts_with("resumed queue \"mail\""));
    let queues = sk(&db, &["queues", "list", "--json"]).await.json();
    assert_eq!(queues[0]["paused"], false);
    assert_eq!(client.claim("mail", 10, Duration::from_secs(30), "t").await.unwrap().len(), 1);
}

/// The directory the demo said its cluster lives in, from its progress lines.
fn cluster_dir(progress: &str) -> PathBuf {
    let line =
        progress.lines().find(|l| l.contains("files in ")).unwrap_or_else(|| panic!("no cluster in {progress:?}"));
    let dir = line.split("files in ").nth(1).unwrap().split(" (removed").next().unwrap();
    PathBuf::from(dir)
}

#[tokio::test]
async fn demo_runs_on_a_private_cluster_and_removes_it() {
    let r = run_with(None, &os(&["demo", "--jobs", "300", "--json"]), None).await;
    let summary = r.json();
    assert_eq!((summary["jobs"].as_i64(), summary["finished"].as_i64()), (Some(300), Some(300)), "{summary}");
    assert_eq!(summary["stats"]["total"]["completed"], 300);
    assert!(summary["retried"].as_i64().unwrap() > 0 && summary["scheduled"].as_i64().unwrap() > 0, "{summary}");
    let dir = cluster_dir(&r.stderr);
    assert!(dir.is_absolute() && !dir.exists(), "{} was left behind", dir.display());
    assert!(r.stderr.contains("stopped and removed the private cluster"), "{}", r.stderr);
}

#[tokio::test]
async fn demo_removes_its_cluster_on_ctrl_c() {
    // Enough jobs that it is still busy when interrupted.
    let mut child = command(None, &os(&["demo", "--jobs", "3000000"])).stdin(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    while let Some(line) = tokio::time::timeout(RUN_TIMEOUT, lines.next_line()).await.unwrap().unwrap() {
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("schema ") {
            break;
        }
    }
    let dir = cluster_dir(&seen);
    assert!(dir.exists(), "the cluster is up: {seen}");
    let pid = child.id().unwrap().to_string();
    let kill = std::process::Command::new("kill").args([OsStr::new("-INT"), OsStr::new(&pid)]).status().unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait()).await.unwrap().unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("stopped and removed the private cluster"), "{rest}");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

/// `skiplock dashboard` serves nobody beyond this machine without
/// authentication, and says how to give it.
#[tokio::test]
async fn the_dashboard_refuses_a_network_address_without_authentication() {
    let url = Some("postgres://nobody@127.0.0.1:1/none");
    let run = run_with(url, &os(&["dashboard", "--listen", "0.0.0.0:0"]), None).await;
    let line = run.error_line();
    assert!(line.contains("without authentication") && line.contains("--token"), "{line}");
    let run = run_with(url, &os(&["dashboard", "--listen", "127.0.0.1:0", "--basic-auth", "nopass"]), None).await;
    assert!(run.error_line().contains("USER:PASS"), "{}", run.stderr);
    let run = run_with(url, &os(&["dashboard", "--listen", "127.0.0.1:0", "--allow", "retry,drop"]), None).await;
    assert!(run.error_line().contains("\"drop\" is not an action"), "{}", run.stderr);
}

#[tokio::test]
async fn health_says_what_needs_action_and_exits_3_then() {
    let db = fresh().await;
    // No worker runs: nobody leads the maintenance.
    let r = sk(&db, &["health"]).await;
    assert_eq!(r.code, Some(3), "stdout: {} stderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.starts_with("health of "), "{}", r.stdout);
    assert!(r.stdout.contains("\nWARN leader: no process leads the maintenance"), "{}", r.stdout);
    assert!(r.stdout.contains("what to do: start a worker"), "{}", r.stdout);
    let line = r.stderr.trim();
    assert!(line.starts_with("error: ") && line.ends_with("need action") && !line.contains('\n'), "{line}");
    // The same as JSON, every figure present.
    let r = sk(&db, &["health", "--json"]).await;
    assert_eq!(r.code, Some(3));
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    for key in ["hot_table", "oldest_xmin", "notify_queue_usage", "leader", "stuck_running", "archive_partitions"] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert!(v["findings"].as_array().unwrap().iter().any(|f| f["check"] == "leader" && f["level"] == "warn"));
    // Bad limits: one line naming the flag.
    let r = sk(&db, &["health", "--notify-usage", "2"]).await;
    assert!(r.error_line().contains("--notify-usage"), "{}", r.stderr);
    let r = sk(&db, &["health", "--xmin-age", "soon"]).await;
    assert!(r.error_line().contains("--xmin-age"), "{}", r.stderr);
}
