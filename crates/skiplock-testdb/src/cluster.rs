//! Private clusters, and the one cluster that test processes share.

use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::{Programs, alive, tail};
use crate::registry::{self, PRIVATE_GRACE_SECS, SHARED_DIR, SHARED_GRACE_SECS};
use crate::tls::{self, ClusterTls};
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
/// Set to `1` to make the cluster that [`fresh_database`](crate::fresh_database) shares a
/// TLS cluster (see [`ClusterTls`]): every test database's URL is then a `verify-full` one,
/// so any test runs over TLS. It is another cluster than the plain one (`shared-tls`).
pub const TEST_TLS_ENV: &str = "SKIPLOCK_TEST_TLS";
/// The settings file a running cluster's changes go to ([`Cluster::set_synchronous_standby_names`]),
/// included after ours; not copied to a standby.
const RUNTIME_CONF: &str = "skiplock-runtime.conf";

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
    /// `Some`: a TLS cluster, `ssl = on` with a CA and certificates made for it and TCP
    /// connections with TLS only; [`Cluster::url`] is then a `verify-full` URL naming the CA.
    /// `None` (the default): no TLS.
    pub tls: Option<ClusterTls>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            durable: false,
            max_connections: MAX_CONNECTIONS_DEFAULT,
            shared_buffers: SHARED_BUFFERS_DEFAULT.to_owned(),
            settings: Vec::new(),
            bin_dir: None,
            tls: None,
        }
    }
}

/// A running server and where it lives; no ownership, so it can be shared and cloned.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) dir: PathBuf,
    pub(crate) port: u16,
    pub(crate) programs: Programs,
    /// With TLS: the host its URL names (one its certificate is for).
    pub(crate) tls_host: Option<String>,
}

impl Server {
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub(crate) fn url(&self, dbname: &str) -> String {
        match &self.tls_host {
            None => format!("postgres://{SUPERUSER}@127.0.0.1:{}/{dbname}", self.port),
            Some(host) => format!(
                "postgres://{SUPERUSER}@{host}:{}/{dbname}?sslmode=verify-full&sslrootcert={}",
                self.port,
                self.ca_cert().display()
            ),
        }
    }

    /// A key-value connection string over the unix socket, which needs no TLS.
    pub(crate) fn socket_url(&self, dbname: &str) -> String {
        format!("host={} port={} user={SUPERUSER} dbname={dbname}", self.dir.display(), self.port)
    }

    fn ca_cert(&self) -> PathBuf {
        tls::dir(&self.dir).join("ca.crt")
    }

    /// Runs initdb in `dir` (made by [`registry::create_cluster_dir`]) and starts the server
    /// on a free port.
    fn create(dir: PathBuf, programs: Programs, opts: &ClusterOptions) -> Result<Self, Error> {
        let tls_host = opts.tls.as_ref().map(|t| {
            let names = &t.server_names;
            ["127.0.0.1", "localhost"]
                .into_iter()
                .find(|n| names.iter().any(|m| m == n))
                .unwrap_or("127.0.0.1")
                .to_owned()
        });
        let mut server = Server { dir, port: 0, programs, tls_host };
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
            .and_then(|mut f| {
                f.write_all(format!("\ninclude = 'skiplock.conf'\ninclude_if_exists = '{RUNTIME_CONF}'\n").as_bytes())
            })
            .map_err(Error::io("append to", &conf))?;
        if let Some(t) = &opts.tls {
            tls::create(&server.dir, t, &server.programs)?;
            let hba = data.join("pg_hba.conf");
            fs::write(&hba, tls::hba(t)).map_err(Error::io("write", &hba))?;
        }
        server.start_on_free_port(opts)?;
        Ok(server)
    }

    /// Picks a free port, writes our settings for it and starts the server; again on another
    /// port if that one was taken meanwhile.
    fn start_on_free_port(&mut self, opts: &ClusterOptions) -> Result<(), Error> {
        let server = self;
        let data = server.data_dir();
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
                    return Ok(());
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
        if opts.tls.is_some() {
            let tls = tls::dir(&self.dir);
            all.push(("ssl", "on".into()));
            for (name, file) in
                [("ssl_cert_file", "server.crt"), ("ssl_key_file", "server.key"), ("ssl_ca_file", "ca.crt")]
            {
                all.push((name, tls.join(file).to_string_lossy().into_owned()));
            }
        }
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
        let tls_host = tls::dir(dir).join("ca.crt").exists().then(|| "127.0.0.1".to_owned());
        let server =
            Server { dir: dir.to_owned(), port, programs: programs.with_bin(read("bin_dir")?.into()), tls_host };
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
    opts: ClusterOptions,
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
        let bin = match &opts.bin_dir {
            Some(dir) => dir.clone(),
            None => find_bin_dir()?,
        };
        let programs = Programs::new(bin)?;
        let dir = new_private_dir(&programs)?;
        match Server::create(dir.clone(), programs.clone(), &opts) {
            Ok(server) => Ok(Cluster { server, opts }),
            Err(e) => {
                registry::teardown(&dir, &programs);
                Err(e)
            }
        }
    }

    /// Starts a streaming standby of this cluster, as a cluster of its own: a
    /// `pg_basebackup -R` (with a replication slot) into a new directory, its own free port,
    /// the same options, started and following this one. It is a hot standby (read-only
    /// queries); [`promote`](Self::promote) makes it a primary. Synchronous replication is
    /// off until [`set_synchronous_standby_names`](Self::set_synchronous_standby_names) is
    /// called on this cluster. A TLS cluster's standby has the same CA and certificates.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] if `pg_basebackup` fails (this cluster must be running), and the
    /// errors of [`Cluster::start`].
    ///
    /// # Example: a primary, its standby, and a URL that follows the primary
    ///
    /// ```no_run
    /// use skiplock_testdb::{Cluster, ClusterOptions};
    ///
    /// let primary = Cluster::start(ClusterOptions::default())?;
    /// let standby = primary.start_standby()?;
    /// primary.set_synchronous_standby_names("*")?;
    /// let url = format!(
    ///     "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
    ///     primary.port(),
    ///     standby.port()
    /// );
    /// primary.stop()?; // a crash of the primary
    /// standby.promote()?; // the URL now reaches the standby
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn start_standby(&self) -> Result<Cluster, Error> {
        let programs = self.server.programs.clone();
        let dir = new_private_dir(&programs)?;
        let made = (|| {
            let data = dir.join("data");
            let slot = dir.file_name().map(|n| n.to_string_lossy().replace('-', "_")).unwrap_or_default();
            let port = self.server.port.to_string();
            let args: [&OsStr; 16] = [
                "-h".as_ref(),
                "127.0.0.1".as_ref(),
                "-p".as_ref(),
                port.as_ref(),
                "-U".as_ref(),
                SUPERUSER.as_ref(),
                "-D".as_ref(),
                data.as_ref(),
                "-R".as_ref(),
                "-X".as_ref(),
                "stream".as_ref(),
                "-c".as_ref(),
                "fast".as_ref(),
                "-C".as_ref(),
                "-S".as_ref(),
                slot.as_ref(),
            ];
            beside_pg_ctl(&programs, "pg_basebackup").run("pg_basebackup", &args)?;
            // What the primary was told at run time (synchronous standbys) is not the standby's.
            let _ = fs::remove_file(data.join(RUNTIME_CONF));
            if self.opts.tls.is_some() {
                let (from, to) = (tls::dir(&self.server.dir), tls::dir(&dir));
                fs::create_dir(&to).map_err(Error::io("create directory", &to))?;
                programs.chown(&to)?;
                for file in ["ca.crt", "ca.key", "server.crt", "server.key"] {
                    fs::copy(from.join(file), to.join(file)).map_err(Error::io("copy", from.join(file)))?;
                    programs.chown(&to.join(file))?;
                }
            }
            let mut server = Server {
                dir: dir.clone(),
                port: 0,
                programs: programs.clone(),
                tls_host: self.server.tls_host.clone(),
            };
            server.start_on_free_port(&self.opts)?;
            Ok(server)
        })();
        match made {
            Ok(server) => Ok(Cluster { server, opts: self.opts.clone() }),
            Err(e) => {
                registry::teardown(&dir, &programs);
                Err(e)
            }
        }
    }

    /// Promotes this standby to a primary (`pg_ctl promote -w`): returns once it accepts
    /// writes.
    ///
    /// # Errors
    ///
    /// [`Error::Command`] if `pg_ctl promote` fails, e.g. because this is not a standby.
    pub fn promote(&self) -> Result<(), Error> {
        let data = self.server.data_dir();
        let args: [&OsStr; 5] = ["promote".as_ref(), "-w".as_ref(), "-s".as_ref(), "-D".as_ref(), data.as_ref()];
        self.server.programs.run("pg_ctl", &args)
    }

    /// Sets this primary's `synchronous_standby_names` (e.g. `"*"`: any standby; `""`:
    /// asynchronous) and reloads its configuration. Commits then wait for a standby's flush,
    /// as long as `synchronous_commit` is on (give `durable: true`, or set it in
    /// [`ClusterOptions::settings`]: a non-durable cluster turns it off).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSetting`] for a value with a line break, [`Error::Io`] or
    /// [`Error::Command`] if the file cannot be written or the reload fails.
    pub fn set_synchronous_standby_names(&self, names: &str) -> Result<(), Error> {
        if names.contains(['\n', '\r', '\0']) {
            let reason = "values cannot span lines";
            return Err(Error::InvalidSetting { name: "synchronous_standby_names".into(), reason });
        }
        let file = self.server.data_dir().join(RUNTIME_CONF);
        let text = format!("synchronous_standby_names = '{}'\n", names.replace('\'', "''"));
        fs::write(&file, text).map_err(Error::io("write", &file))?;
        let data = self.server.data_dir();
        let args: [&OsStr; 4] = ["reload".as_ref(), "-s".as_ref(), "-D".as_ref(), data.as_ref()];
        self.server.programs.run("pg_ctl", &args)
    }

    /// The CA certificate of a TLS cluster (its `sslrootcert`); `None` without TLS.
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.opts.tls.as_ref().map(|_| self.server.ca_cert())
    }

    /// A client certificate and key for `user`, signed by this TLS cluster's CA, written in
    /// its directory (the key readable by its owner only): `sslcert` and `sslkey` for a server
    /// that asks for client certificates ([`ClusterTls::client_certs`]).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if this is no TLS cluster or the files cannot be written.
    pub fn client_cert(&self, user: &str) -> Result<(PathBuf, PathBuf), Error> {
        tls::client_cert(&self.server.dir, user)
    }

    /// A key-value connection string for `dbname` over the unix socket, as the superuser:
    /// it needs no TLS, even on a TLS cluster.
    pub fn socket_url(&self, dbname: &str) -> String {
        self.server.socket_url(dbname)
    }
}

/// The programs of the installation `pg_ctl` comes from, for `program`, which the bin
/// directory may lack: a directory on `PATH` may hold links to `initdb` and `pg_ctl` only.
fn beside_pg_ctl(programs: &Programs, program: &str) -> Programs {
    if programs.bin.join(program).exists() {
        return programs.clone();
    }
    match fs::canonicalize(programs.bin.join("pg_ctl")).ok().and_then(|p| p.parent().map(Path::to_owned)) {
        Some(dir) if dir.join(program).exists() => programs.with_bin(dir),
        _ => programs.clone(),
    }
}

/// Makes a new, registered directory for a private cluster, watched by a watchdog from the
/// start.
fn new_private_dir(programs: &Programs) -> Result<PathBuf, Error> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let base = registry::base_dir()?;
    let dir = {
        let _lock = registry::lock(&base)?;
        registry::sweep(&base, programs);
        // The sequence makes names unique within this process; a leftover of an earlier
        // process with our pid would collide, so skip such names.
        let dir = loop {
            let candidate = base.join(format!("c-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
            if !candidate.exists() {
                break candidate;
            }
        };
        registry::create_cluster_dir(&dir, programs)?;
        dir
    };
    // From here on the watchdog covers a kill at any point, including during initdb.
    if let Err(e) = registry::spawn_watchdog(&base, &dir, PRIVATE_GRACE_SECS, programs) {
        registry::teardown(&dir, programs);
        return Err(e);
    }
    Ok(dir)
}

impl Cluster {
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
    /// On a TLS cluster, `…/postgres?sslmode=verify-full&sslrootcert=<its CA>` (the host one its
    /// certificate is for).
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
    let tls = std::env::var(TEST_TLS_ENV).is_ok_and(|v| v == "1");
    let dir = base.join(if tls { format!("{SHARED_DIR}-tls") } else { SHARED_DIR.to_owned() });
    let opts = ClusterOptions { tls: tls.then(ClusterTls::default), ..ClusterOptions::default() };
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
            Server::create(dir.clone(), programs.clone(), &opts).inspect_err(|_| {
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
