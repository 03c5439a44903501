//! Through PgBouncer in transaction pooling mode (Debian's pgbouncer, which
//! keeps no prepared statements): enqueue, and a worker's claims,
//! heartbeats, completions and maintenance, with LISTEN on a direct
//! connection. `PgBouncer::start` runs one in front of the test database's
//! server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiplock::{Client, EnqueueOptions, Listen, NewJob, StatementMode, Worker};
use skiplock_testdb::TestDatabase;

use crate::support::fresh;

/// A pgbouncer process in transaction pooling mode, on a free port of
/// 127.0.0.1, configured in a temporary directory; stopped on drop.
pub struct PgBouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts pgbouncer in front of `db`'s server (as the `postgres` user
    /// when run as root, as pgbouncer refuses root) and waits until it
    /// accepts connections.
    pub async fn start(db: &TestDatabase) -> PgBouncer {
        let cfg: tokio_postgres::Config = db.url().parse().expect("the test database's URL");
        let host = match cfg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            other => panic!("pgbouncer tests need a TCP server, not {other:?}"),
        };
        let server_port = cfg.get_ports().first().copied().unwrap_or(5432);
        let user = cfg.get_user().unwrap_or("postgres").to_owned();
        let bin = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)");
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("skiplock-pgbouncer-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // pgbouncer may run as another user: let it write its log here.
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        std::fs::write(dir.join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        let ini = format!(
            "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
             listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {users}\n\
             pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n\
             ignore_startup_parameters = extra_float_digits,options\nlogfile = {log}\n",
            users = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
        );
        let ini_path = dir.join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).unwrap();
        for f in ["users.txt", "pgbouncer.ini"] {
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let is_root = std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false);
        let mut cmd = if is_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        let child = cmd.arg(&ini_path).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        let child = child.expect("start pgbouncer");
        let bouncer = PgBouncer { child, port, dir };
        // Ready when it accepts a connection (bounded: it starts in
        // milliseconds, or its log says why not).
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(tokio::time::Instant::now() < deadline, "pgbouncer did not start: {}", bouncer.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        bouncer
    }

    /// The URL of database `dbname` through this pgbouncer.
    pub fn url(&self, user: &str, dbname: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const JOBS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20000_job_drain_through_pgbouncer_in_transaction_mode_completes_every_job_once() {
    let t = fresh().await;
    let bouncer = PgBouncer::start(&t.db).await;
    let user = t.db.url().split("://").nth(1).and_then(|r| r.split('@').next()).unwrap_or("postgres").to_owned();
    let client = Client::builder(bouncer.url(&user, t.db.name()))
        .statement_mode(StatementMode::Unnamed)
        .pool_size(10)
        .build()
        .unwrap();

    // Enqueue through pgbouncer: one big bulk call (several statements in one
    // transaction), and single jobs (one statement each).
    let jobs: Vec<NewJob> = (0..JOBS - 100)
        .map(|i| NewJob::new("drain", &serde_json::json!({ "i": i }), EnqueueOptions::new()).unwrap())
        .collect();
    assert_eq!(client.enqueue_many(jobs).await.unwrap().len(), JOBS - 100);
    for i in JOBS - 100..JOBS {
        let job =
            NewJob::new("drain", &serde_json::json!({ "i": i }), EnqueueOptions::new().unique_key(format!("u{i}")));
        assert!(client.enqueue_job(job.unwrap()).await.unwrap().inserted);
    }
    assert_eq!(t.count("jobs", "state = 'available'").await, JOBS as i64);

    let runs: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
    let all_ran = Arc::new(tokio::sync::Notify::new());
    let (r, done) = (runs.clone(), all_ran.clone());
    let worker = Worker::builder(client.clone())
        .queue("default", 50)
        // Heartbeats every 700ms, so they too go through pgbouncer.
        .lease(Duration::from_secs(2))
        // LISTEN needs a session: a direct connection, past pgbouncer.
        .listen(Listen::Url(t.db.url().to_owned()))
        .register_raw("drain", None, move |_args, ctx| {
            let mut runs = r.lock().unwrap();
            *runs.entry(ctx.id()).or_default() += 1;
            if runs.len() == JOBS {
                done.notify_one();
            }
            async { Ok(()) }
        })
        .build()
        .unwrap();
    let worker_id = worker.id().to_owned();
    let handle = worker.start();
    tokio::time::timeout(Duration::from_secs(300), all_ran.notified())
        .await
        .unwrap_or_else(|_| panic!("the drain stalled; pgbouncer log:\n{}", bouncer.log()));
    // Maintenance went through pgbouncer too: this worker was elected.
    assert_eq!(client.leader().await.unwrap().map(|l| l.id), Some(worker_id));
    handle.shutdown().await;

    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
    assert_eq!(t.count("jobs", "true").await, 0);
    assert_eq!(t.count("jobs_archive", "state = 'completed' AND attempt = 1").await, JOBS as i64);
    assert_eq!(t.count("jobs_archive", "true").await, JOBS as i64);
}
