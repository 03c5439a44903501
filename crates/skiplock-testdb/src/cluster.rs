//! Private clusters, and the one cluster that test processes share.

use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::{Programs, alive, tail};
use crate::registry::{self, PRIVATE_GRACE_SECS, SHARED_DIR, SHARED_GRACE_SECS};
use crate::{Error, find_bin_dir};

/// Default for [`ClusterOptions::max_connections`]: room for parallel tests that each hold a
/// pool, well above the server's own default of 100.
pub const MAX_CONNECTIONS_DEFAULT: u32 = 300;
/// Default for [`ClusterOptions::shared_buffers`]: the server's own default, small enough for
/// a few clusters side by side on a laptop.
pub const SHARED_BUFFERS_DEFAULT: &str = "128MB";
/// How often [`Cluster::start`] picks a new port when the one it picked was taken meanwhile.
const PORT_ATTEMPTS: u32 = 5;
/// Lines of server log quoted when the server does not start.
const LOG_TAIL_LINES: usize = 30;
/// The superuser `initdb` creates; every URL connects as it, with trust authentication.
const SUPERUSER: &str = "postgres";

/// How to configure a [`Cluster`]. Build it with `..Default::default()` so new fields do not
/// break you.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOptions {
    /// Whether commits must survive a power cut. `false` (the default) turns off `fsync`,
    /// `synchronous_commit` and `full_page_writes`: several times faster, and a test cluster
    /// is thrown away anyway. Benchmarks that want realistic numbers set it to `true`.
    pub durable: bool,
    /// The server's `max_connections`. Defaults to [`MAX_CONNECTIONS_DEFAULT`].
    pub max_connections: u32,
    /// The server's `shared_buffers`, e.g. `"1GB"`. Defaults to [`SHARED_BUFFERS_DEFAULT`].
    pub shared_buffers: String,
    /// More `postgresql.conf` settings as (name, value), applied last so they win. Values are
    /// quoted for you.
    pub settings: Vec<(String, String)>,
    /// The server programs to use. `None` (the default) means [`find_bin_dir`].
    pub bin_dir: Option<PathBuf>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            durable: false,
            max_connections: MAX_CONNECTIONS_DEFAULT,
            shared_buffers: SHARED_BUFFERS_DEFAULT.to_owned(),
            settings: Vec::new(),
            bin_dir: None,
        }
    }
}

/// A running server and where it lives; no ownership, so it can be shared and cloned.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) programs: Programs,
}

impl Server {
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub(crate) fn url(&self, dbname: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{dbname}", self.port)
    }

    /// Runs initdb in `dir` (made by [`registry::create_cluster_dir`]) and starts the server
    /// on a free port.
    fn create(dir: PathBuf, programs: Programs, opts: &ClusterOptions) -> Result<Self, Error> {
        let mut server = Server { dir, port: 0, programs };
        server.settings(opts)?; // a bad setting fails before the slow part
        let data = server.data_dir();
        fs::create_dir(&data).map_err(Error::io("create directory", &data))?;
        server.programs.chown(&data)?;
        let initdb_args: [&OsStr; 10] = [
            "-D".as_ref(),
            data.as_ref(),
            "-U".as_ref(),
            SUPERUSER.as_ref(),
            "--auth=trust".as_ref(),
            "-E".as_ref(),
            "UTF8".as_ref(),
            "--locale=C".as_ref(),
            // No fsync of the new files: a crash mid-test loses a throwaway cluster, nothing more.
            "--no-sync".as_ref(),
            "--no-instructions".as_ref(),
        ];
        server.programs.run("initdb", &initdb_args)?;
        // Our settings live in their own file, rewritten per start attempt with a new port.
        let conf = data.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut f| f.write_all(b"\ninclude = 'skiplock.conf'\n"))
            .map_err(Error::io("append to", &conf))?;

        for attempt in 1..=PORT_ATTEMPTS {
            // The port is free now; another process may take it before the server binds it,
            // which the log says and we retry.
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(Error::io("find a free port on", "127.0.0.1"))?
                .port();
            server.port = port;
            let settings = data.join("skiplock.conf");
            fs::write(&settings, server.settings(opts)?).map_err(Error::io("write", &settings))?;
            match server.start() {
                Ok(()) => {
                    let port_file = server.dir.join("port");
                    fs::write(&port_file, port.to_string()).map_err(Error::io("write", &port_file))?;
                    return Ok(server);
                }
                Err(Error::ServerStart { log_tail, .. })
                    if attempt < PORT_ATTEMPTS && log_tail.contains("Address already in use") => {}
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The contents of `skiplock.conf`.
    fn settings(&self, opts: &ClusterOptions) -> Result<String, Error> {
        let mut all: Vec<(&str, String)> = vec![
            ("listen_addresses", "127.0.0.1".into()),
            ("port", self.port.to_string()),
            ("unix_socket_directories", self.dir.to_string_lossy().into_owned()),
            ("max_connections", opts.max_connections.to_string()),
            ("shared_buffers", opts.shared_buffers.clone()),
        ];
        if !opts.durable {
            for name in ["fsync", "synchronous_commit", "full_page_writes"] {
                all.push((name, "off".into()));
            }
        }
        all.extend(opts.settings.iter().map(|(n, v)| (n.as_str(), v.clone())));
        let mut out = String::from("# written by skiplock-testdb\n");
        for (name, value) in all {
            let invalid = |reason| Error::InvalidSetting { name: name.to_owned(), reason };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
                return Err(invalid("names are letters, digits, '_' and '.'"));
            }
            if value.contains(['\n', '\r', '\0']) {
                return Err(invalid("values cannot span lines"));
            }
            out.push_str(&format!("{name} = '{}'\n", value.replace('\'', "''")));
        }
        Ok(out)
    }

    /// `pg_ctl start -w`: returns once the server accepts connections, or fails with the log.
    fn start(&self) -> Result<(), Error> {
        let (data, log) = (self.data_dir(), self.log_file());
        let log_start = fs::metadata(&log).map_or(0, |m| m.len() as usize);
        let args: [&OsStr; 7] =
            ["start".as_ref(), "-w".as_ref(), "-s".as_ref(), "-D".as_ref(), data.as_ref(), "-l".as_ref(), log.as_ref()];
        self.programs.run("pg_ctl", &args).map_err(|e| {
            let reason = match e {
                Error::Command { output, .. } => output,
                other => other.to_string(),
            };
            let log_text = fs::read(&log).unwrap_or_default();
            let this_attempt = String::from_utf8_lossy(log_text.get(log_start..).unwrap_or_default());
            Error::ServerStart {
                data_dir: data.clone(),
                port: self.port,
                reason,
                log_tail: tail(&this_attempt, LOG_TAIL_LINES),
            }
        })
    }

    fn stop(&self) -> Result<(), Error> {
        self.programs.run("pg_ctl", &registry::stop_args(&self.data_dir()))
    }

    /// The server a previous process left running in `dir`, if it is still up.
    fn find_running(dir: &Path, programs: &Programs) -> Option<Self> {
        let read = |name: &str| fs::read_to_string(dir.join(name)).ok();
        let port = read("port")?.trim().parse().ok()?;
        let server = Server { dir: dir.to_owned(), port, programs: programs.with_bin(read("bin_dir")?.into()) };
        let pid_file = fs::read_to_string(server.data_dir().join("postmaster.pid")).ok()?;
        let postmaster = pid_file.lines().next()?.trim().parse().ok()?;
        alive(postmaster).then_some(server)
    }
}

/// A private PostgreSQL cluster, owned by this value: created in a fresh directory under
/// `/tmp`, listening on a free port of 127.0.0.1, and stopped and deleted on drop.
///
/// Use it where a test needs the server itself: to stop or restart it (fault injection), or
/// to configure it differently. For a plain database per test, [`fresh_database`] is cheaper.
/// If the owning process dies without dropping it, a watchdog removes it within seconds.
///
/// Its methods block (they run `pg_ctl`), so call them outside a Tokio runtime or from
/// `spawn_blocking` if the pause matters.
///
/// [`fresh_database`]: crate::fresh_database
#[derive(Debug)]
pub struct Cluster {
    server: Server,
}

impl Cluster {
    /// Creates and starts a private cluster: initdb into a new directory, then start the
    /// server and wait until it accepts connections. Takes about a second.
    ///
    /// When run as root, the server runs as the `postgres` system user, since PostgreSQL
    /// refuses to run as root. Leftover clusters of killed processes are removed first.
    ///
    /// # Errors
    ///
    /// [`Error::BinariesNotFound`] without an installation, [`Error::NoServerUser`] as root
    /// without a `postgres` user, [`Error::InvalidSetting`] for a bad option,
    /// [`Error::ServerStart`] with the server's log if it does not come up, and
    /// [`Error::Io`] or [`Error::Command`] if the file system or `initdb` fail.
    ///
    /// # Example: a durable cluster for a benchmark
    ///
    /// ```no_run
    /// use skiplock_testdb::{Cluster, ClusterOptions};
    ///
    /// let cluster = Cluster::start(ClusterOptions { durable: true, ..Default::default() })?;
    /// println!("connect to {}", cluster.url("postgres"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start(opts: ClusterOptions) -> Result<Cluster, Error> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let bin = match &opts.bin_dir {
            Some(dir) => dir.clone(),
            None => find_bin_dir()?,
        };
        let programs = Programs::new(bin)?;
        let base = registry::base_dir()?;
        let dir = {
            let _lock = registry::lock(&base)?;
            registry::sweep(&base, &programs);
            // The sequence makes names unique within this process; a leftover of an earlier
            // process with our pid would collide, so skip such names.
            let dir = loop {
                let candidate = base.join(format!("c-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
                if !candidate.exists() {
                    break candidate;
                }
            };
            registry::create_cluster_dir(&dir, &programs)?;
            dir
        };
        // From here on the watchdog covers a kill at any point, including during initdb.
        if let Err(e) = registry::spawn_watchdog(&base, &dir, PRIVATE_GRACE_SECS, &programs) {
            registry::teardown(&dir, &programs);
            return Err(e);
        }
        match Server::create(dir.clone(), programs.clone(), &opts) {
            Ok(server) => Ok(Cluster { server }),
            Err(e) => {
                registry::teardown(&dir, &programs);
                Err(e)
            }
        }
    }

    /// The TCP port on 127.0.0.1 the server listens on. It stays the same across
    /// [`stop`](Self::stop) and [`start_again`](Self::start_again).
    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// The directory holding the server's unix socket (`.s.PGSQL.<port>`); pass it as `host`
    /// to connect without TCP. It is also the cluster's root directory.
    pub fn socket_dir(&self) -> &Path {
        &self.server.dir
    }

    /// The cluster's data directory (`PGDATA`).
    pub fn data_dir(&self) -> PathBuf {
        self.server.data_dir()
    }

    /// The directory of the server programs this cluster runs.
    pub fn bin_dir(&self) -> &Path {
        &self.server.programs.bin
    }

    /// The server's log file, to read when a test wants to know what the server said.
    pub fn log_file(&self) -> PathBuf {
        self.server.log_file()
    }

    /// A URL connecting to database `dbname` as the superuser `postgres` over TCP, e.g.
    /// `postgres://postgres@127.0.0.1:54321/postgres`. No password: authentication is `trust`.
    pub fn url(&self, dbname: &str) -> String {
        self.server.url(dbname)
    }

    /// Stops the server at once, the way a crash would: connections are cut and nothing is
    /// checkpointed. Bring it back with [`start_again`](Self::start_again).
    ///
    /// # Errors
    ///
    /// [`Error::Command`] if `pg_ctl stop` fails, e.g. because the server is not running.
    pub fn stop(&self) -> Result<(), Error> {
        self.server.stop()
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port, and waits until
    /// it accepts connections (after crash recovery).
    ///
    /// # Errors
    ///
    /// [`Error::ServerStart`] with the server's log, e.g. when another process took the port
    /// while the server was down.
    pub fn start_again(&self) -> Result<(), Error> {
        self.server.start()
    }

    /// Crashes and restarts the server on the same port: [`stop`](Self::stop) then
    /// [`start_again`](Self::start_again). Every open connection is cut.
    ///
    /// # Errors
    ///
    /// As for [`stop`](Self::stop) and [`start_again`](Self::start_again).
    pub fn restart_immediate(&self) -> Result<(), Error> {
        self.stop()?;
        self.start_again()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        registry::teardown(&self.server.dir, &self.server.programs);
    }
}

/// The cluster shared by every process of this user that calls `fresh_database`: found
/// running, or started, and joined as a user. Remembered for the life of the process, which
/// stays registered until it exits.
pub(crate) fn shared_server() -> Result<Server, Error> {
    static SHARED: Mutex<Option<Server>> = Mutex::new(None);
    // A panic while holding it left no half-made value behind, only `None`.
    let mut cached = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(server) = &*cached {
        return Ok(server.clone());
    }
    let programs = Programs::new(find_bin_dir()?)?;
    let base = registry::base_dir()?;
    let _lock = registry::lock(&base)?;
    registry::sweep(&base, &programs);
    let dir = base.join(SHARED_DIR);
    let server = match Server::find_running(&dir, &programs) {
        Some(server) => {
            registry::register(&dir)?;
            server
        }
        None => {
            // Whatever is there is a failed or dead attempt; we hold the lock, so nobody uses it.
            registry::teardown(&dir, &programs);
            registry::create_cluster_dir(&dir, &programs)?;
            registry::spawn_watchdog(&base, &dir, SHARED_GRACE_SECS, &programs)?;
            Server::create(dir.clone(), programs.clone(), &ClusterOptions::default()).inspect_err(|_| {
                registry::teardown(&dir, &programs);
            })?
        }
    };
    if !registry::watchdog_alive(&dir) {
        registry::spawn_watchdog(&base, &dir, SHARED_GRACE_SECS, &programs)?;
    }
    *cached = Some(server.clone());
    Ok(server)
}

/// The database to use for a program's run: `DATABASE_URL` if it is set,
/// else a private cluster started with `opts` (returned too: keep it alive,
/// it is stopped and deleted when dropped). For examples and tools that
/// should work with no configuration.
///
/// # Errors
///
/// As [`Cluster::start`].
pub fn url_or_private(opts: ClusterOptions) -> Result<(Option<Cluster>, String), Error> {
    match std::env::var("DATABASE_URL") {
        Ok(url) => Ok((None, url)),
        Err(_) => {
            let cluster = Cluster::start(opts)?;
            let url = cluster.url("postgres");
            Ok((Some(cluster), url))
        }
    }
}
