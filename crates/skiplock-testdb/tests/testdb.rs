//! Against real PostgreSQL: fresh databases, private clusters, and cleanup after killed owners.
//!
//! Some tests run this binary again as a child process (see [`child_role`]): to be SIGKILLed while
//! owning a cluster, to race other processes, or to see a different environment without
//! changing ours, which parallel tests share.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use skiplock_testdb::{Cluster, ClusterOptions, Error, InitError, find_bin_dir, fresh_database};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Which part a child process plays; unset in an ordinary test run.
const ROLE: &str = "SKIPLOCK_TESTDB_TEST_ROLE";
/// How long any cleanup may take before a test calls it a leak.
const CLEANUP_DEADLINE: Duration = Duration::from_secs(30);

static INITS: AtomicUsize = AtomicUsize::new(0);

/// Builds the marker template: one row naming this init run, and a count of runs here.
async fn init_marker(url: String) -> Result<(), InitError> {
    INITS.fetch_add(1, Ordering::SeqCst);
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client.batch_execute("CREATE TABLE marker (run text); INSERT INTO marker VALUES (gen_random_uuid()::text)").await?;
    if let Ok(log) = std::env::var("INIT_LOG") {
        use std::io::Write as _;
        writeln!(std::fs::OpenOptions::new().create(true).append(true).open(log)?, "{}", std::process::id())?;
    }
    Ok(())
}

#[tokio::test]
async fn fresh_databases_are_isolated_clones_of_one_template() -> TestResult {
    let key = unique("isolation");
    let started = Instant::now();
    let a = fresh_database(&key, init_marker).await?;
    let first = started.elapsed();
    let started = Instant::now();
    let b = fresh_database(&key, init_marker).await?;
    eprintln!("first fresh_database: {first:?}, second: {:?}", started.elapsed());

    assert_ne!(a.name(), b.name());
    assert_eq!(INITS.load(Ordering::SeqCst), 1, "init ran once");
    let (ca, cb) = (a.connect().await?, b.connect().await?);
    ca.batch_execute("CREATE TABLE only_in_a ()").await?;
    let absent: bool = cb.query_one("SELECT to_regclass('only_in_a') IS NULL", &[]).await?.get(0);
    assert!(absent, "a table made in one database shows in the other");
    let marker = "SELECT array_agg(run) FROM marker";
    let (ma, mb): (Vec<String>, Vec<String>) =
        (ca.query_one(marker, &[]).await?.get(0), cb.query_one(marker, &[]).await?.get(0));
    assert_eq!(ma.len(), 1);
    assert_eq!(ma, mb, "both come from the same template build");
    Ok(())
}

#[test]
fn template_is_built_once_across_processes() -> TestResult {
    let key = unique("race");
    let log = std::env::temp_dir().join(format!("{key}.log"));
    let kids: Vec<Child> = (0..3)
        .map(|_| run_child("fresh-database").env("KEY", &key).env("INIT_LOG", &log).stdout(Stdio::piped()).spawn())
        .collect::<Result<_, _>>()?;
    for kid in kids {
        let out = kid.wait_with_output()?;
        assert!(out.status.success(), "child failed: {}", String::from_utf8_lossy(&out.stdout));
    }
    let inits = std::fs::read_to_string(&log)?;
    std::fs::remove_file(&log)?;
    assert_eq!(inits.lines().count(), 1, "init runs: {inits:?}");
    Ok(())
}

#[test]
fn external_server_is_used_when_its_url_is_set() -> TestResult {
    let cluster = Cluster::start(ClusterOptions::default())?;
    let out = run_child("fresh-database")
        .env("SKIPLOCK_TEST_DATABASE_URL", cluster.url("postgres"))
        .env("KEY", "external")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    assert!(field(&stdout, "URL").contains(&format!(":{}/t_", cluster.port())), "{stdout}");
    assert_eq!(field(&stdout, "PORT"), "None", "no shared cluster with an external url");
    // The child's database went with it; the template stays for the next run.
    let names = block_on_query(
        &cluster.url("postgres"),
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname ~ '^(tpl|t)_'",
    )?;
    assert!(names.starts_with("tpl_external_") && !names.contains(','), "{names}");
    Ok(())
}

#[test]
fn private_cluster_runs_and_leaves_nothing_behind() -> TestResult {
    let cluster = Cluster::start(ClusterOptions::default())?;
    let dir = cluster.socket_dir().to_owned();
    assert!(cluster.data_dir().starts_with(&dir) && cluster.bin_dir().join("pg_ctl").exists());
    assert_eq!(block_on_query(&cluster.url("postgres"), "SELECT 'ok'")?, "ok");
    let pids = server_pids(&cluster.data_dir());
    assert!(pids.len() > 1, "a postmaster and its helpers: {pids:?}");

    drop(cluster);
    assert!(!dir.exists(), "{} survived the drop", dir.display());
    let alive: Vec<_> = pids.into_iter().filter(|&p| alive(p)).collect();
    assert!(alive.is_empty(), "server processes survived the drop: {alive:?}");
    Ok(())
}

#[test]
fn private_cluster_comes_back_on_the_same_port() -> TestResult {
    let cluster = Cluster::start(ClusterOptions::default())?;
    let url = cluster.url("postgres");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (before, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        let connection = tokio::spawn(connection);
        cluster.restart_immediate()?;
        assert!(before.simple_query("SELECT 1").await.is_err(), "the crash cut the connection");
        assert!(connection.await?.is_err());

        cluster.stop()?;
        assert!(tokio_postgres::connect(&url, tokio_postgres::NoTls).await.is_err(), "stopped, yet reachable");
        cluster.start_again()?;
        let (after, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        after.simple_query("SELECT 1").await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    assert!(url.contains(&format!(":{}/", cluster.port())));
    Ok(())
}

#[test]
fn failed_start_reports_the_server_log() {
    let opts = ClusterOptions { settings: vec![("shared_buffers".into(), "plenty".into())], ..Default::default() };
    let err = Cluster::start(opts).expect_err("the server rejects the setting").to_string();
    assert!(err.contains("did not start") && err.contains("server log"), "{err}");
    assert!(err.contains(r#"invalid value for parameter "shared_buffers": "plenty""#), "{err}");

    let opts = ClusterOptions { settings: vec![("bad\nname".into(), "1".into())], ..Default::default() };
    assert!(matches!(Cluster::start(opts), Err(Error::InvalidSetting { .. })));
}

#[test]
fn killed_owner_cluster_is_removed_by_its_watchdog() -> TestResult {
    let (mut owner, dir) = spawn_cluster_owner()?;
    let pids = server_pids(&dir.join("data"));
    owner.kill()?; // SIGKILL: no destructor runs
    owner.wait()?;
    wait_until(|| !dir.exists() && !pids.iter().any(|&p| alive(p)))?;
    Ok(())
}

#[test]
fn killed_owner_and_watchdog_cluster_is_swept_at_next_start() -> TestResult {
    let (mut owner, dir) = spawn_cluster_owner()?;
    let pids = server_pids(&dir.join("data"));
    let watchdog: u32 = std::fs::read_to_string(dir.join("watchdog.pid"))?.trim().parse()?;
    assert!(Command::new("kill").args(["-KILL", &watchdog.to_string()]).status()?.success());
    wait_until(|| !alive(watchdog))?;
    owner.kill()?;
    owner.wait()?;

    let _next = Cluster::start(ClusterOptions::default())?;
    assert!(!dir.exists(), "{} survived the sweep", dir.display());
    assert!(!pids.iter().any(|&p| alive(p)), "server processes survived the sweep");
    Ok(())
}

#[test]
fn missing_binaries_error_says_how_to_install() -> TestResult {
    let empty = std::env::temp_dir().join(unique("empty"));
    std::fs::create_dir(&empty)?;
    let out = run_child("find-bin").env("PG_BIN", &empty).env("PATH", &empty).output()?;
    std::fs::remove_dir(&empty)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let error = field(&stdout, "ERROR");
    for needle in ["apt-get install postgresql", "PG_BIN=", "SKIPLOCK_TEST_DATABASE_URL", "DATABASE_URL"] {
        assert!(error.contains(needle), "{needle:?} missing from {stdout}");
    }
    Ok(())
}

/// The child process's side; a no-op test in an ordinary run. Its `KEY=value` lines start
/// on a line of their own, since libtest prints "test child_role ... " before them.
#[test]
fn child_role() -> TestResult {
    let Ok(role) = std::env::var(ROLE) else { return Ok(()) };
    match role.as_str() {
        "find-bin" => match find_bin_dir() {
            Ok(dir) => println!("\nFOUND={}", dir.display()),
            Err(e) => println!("\nERROR={e}"),
        },
        "own-cluster" => {
            let cluster = Cluster::start(ClusterOptions::default())?;
            println!("\nDIR={}", cluster.socket_dir().display());
            // Hold the cluster until the parent kills us (or closes our stdin by dying).
            std::io::stdin().read_line(&mut String::new())?;
        }
        "fresh-database" => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let db = runtime.block_on(fresh_database(&std::env::var("KEY")?, init_marker))?;
            println!("\nURL={}\nPORT={:?}", db.url(), db.port());
        }
        other => panic!("unknown role {other}"),
    }
    Ok(())
}

/// This test binary, run again to play `role` in [`child_role`].
fn run_child(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary path"));
    cmd.args(["child_role", "--exact", "--nocapture", "--test-threads=1"]).env(ROLE, role).stdin(Stdio::null());
    cmd
}

/// A child owning a private cluster, and the cluster's directory.
fn spawn_cluster_owner() -> Result<(Child, PathBuf), Box<dyn std::error::Error>> {
    let mut owner = run_child("own-cluster").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
    let stdout = BufReader::new(owner.stdout.take().expect("piped"));
    for line in stdout.lines() {
        if let Some(dir) = line?.strip_prefix("DIR=") {
            return Ok((owner, PathBuf::from(dir)));
        }
    }
    Err(format!("child exited without a cluster: {:?}", owner.wait()?).into())
}

/// The value of the `KEY=value` line in a child's output, or "".
fn field(output: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    output.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_default().to_owned()
}

/// Runs `sql` on its own runtime and returns the first column of the first row as text.
fn block_on_query(url: &str, sql: &str) -> Result<String, Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let row = client.query_one(&format!("SELECT ({sql})::text"), &[]).await?;
        Ok(row.get::<_, Option<String>>(0).unwrap_or_default())
    })
}

/// The postmaster named in `data/postmaster.pid` and its child processes.
fn server_pids(data: &Path) -> Vec<u32> {
    let pid_file = std::fs::read_to_string(data.join("postmaster.pid")).expect("postmaster.pid");
    let postmaster: u32 = pid_file.lines().next().and_then(|l| l.trim().parse().ok()).expect("a pid");
    let children = std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        let ppid: u32 = stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()?;
        (ppid == postmaster).then_some(pid)
    });
    std::iter::once(postmaster).chain(children).collect()
}

/// Whether `pid` runs; a zombie has exited and counts as dead.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with(['Z', 'X'])))
}

/// Polls `done` until it holds, failing after [`CLEANUP_DEADLINE`]. Other processes do the
/// cleanup we wait for, and nothing signals us when they finish.
fn wait_until(mut done: impl FnMut() -> bool) -> TestResult {
    let deadline = Instant::now() + CLEANUP_DEADLINE;
    while !done() {
        if Instant::now() > deadline {
            return Err("cleanup did not happen in time".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A name no other test run uses.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    format!("skiplock-testdb-{prefix}-{}-{nanos}", std::process::id())
}
