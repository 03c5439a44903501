//! [`PgBouncer`]: a pgbouncer in transaction pooling mode in front of a test server.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::Error;
use crate::process::Programs;

/// Where Debian's package installs the program.
const PGBOUNCER_DIRS: [&str; 2] = ["/usr/sbin", "/usr/bin"];
/// Longest wait for it to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A pgbouncer process in **transaction** pooling mode, on a free port of 127.0.0.1, in front
/// of one server, configured in a temporary directory; stopped and removed on drop.
///
/// Authentication is `trust` and every database name is forwarded (`* = host=… port=…`),
/// so a test database's URL works through it with only the port changed: [`PgBouncer::url`].
/// When run as root it runs as the `postgres` system user, as pgbouncer refuses root.
#[derive(Debug)]
pub struct PgBouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts pgbouncer in front of the server of `database_url` and waits until it accepts
    /// connections.
    ///
    /// # Errors
    ///
    /// [`Error::PgBouncerNotFound`] without the program (`apt-get install pgbouncer`),
    /// [`Error::Command`] with its log if it does not come up, [`Error::Io`] for the files.
    pub fn start(database_url: &str) -> Result<PgBouncer, Error> {
        let (host, server_port, user, tls) = parts(database_url)?;
        let bin = PGBOUNCER_DIRS.into_iter().map(Path::new).find(|d| d.join("pgbouncer").exists());
        let programs = Programs::new(bin.ok_or(Error::PgBouncerNotFound)?.to_owned())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(Error::io("find a free port on", "127.0.0.1"))?
            .port();
        let dir = std::env::temp_dir().join(format!("skiplock-pgbouncer-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir).map_err(Error::io("create directory", &dir))?;
        // pgbouncer may run as another user: let it write its log here.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).map_err(Error::io("chmod", &dir))?;
        let write = |name: &str, text: String| {
            let path = dir.join(name);
            fs::write(&path, text).map_err(Error::io("write", &path))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(Error::io("chmod", &path))
        };
        write("users.txt", format!("\"{user}\" \"\"\n"))?;
        write(
            "pgbouncer.ini",
            format!(
                "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\nlisten_addr = 127.0.0.1\n\
                 listen_port = {port}\nunix_socket_dir =\nauth_type = trust\nauth_file = {users}\n\
                 pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n\
                 ignore_startup_parameters = extra_float_digits,options\nlogfile = {log}\n{tls}",
                users = dir.join("users.txt").display(),
                log = dir.join("pgbouncer.log").display(),
            ),
        )?;
        let child = programs
            .command("pgbouncer")
            .arg(dir.join("pgbouncer.ini"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Command {
                program: "pgbouncer".into(),
                status: e.to_string(),
                output: String::new(),
            })?;
        let bouncer = PgBouncer { child, port, dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if started.elapsed() > START_TIMEOUT {
                let status = format!("not accepting connections on port {port} after {START_TIMEOUT:?}");
                return Err(Error::Command { program: "pgbouncer".into(), status, output: bouncer.log() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(bouncer)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `database_url` through this pgbouncer: the same user and database, its host and port
    /// replaced, and its TLS options left out (pgbouncer talks TLS to a TLS server, not to its
    /// clients).
    pub fn url(&self, database_url: &str) -> String {
        let rest = database_url.split_once("://").map_or(database_url, |(_, r)| r);
        let (auth, after) = rest.split_once('@').unwrap_or(("", rest));
        let path = after.find('/').map_or("", |i| &after[i..]);
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let kept: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("ssl")).collect();
        let query = if kept.is_empty() { String::new() } else { format!("?{}", kept.join("&")) };
        let auth = if auth.is_empty() { String::new() } else { format!("{auth}@") };
        format!("postgres://{auth}127.0.0.1:{}{path}{query}", self.port)
    }

    /// Its log, for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The TCP host, port and user of `database_url`, and pgbouncer's settings for its TLS
/// options (`sslmode`, `sslrootcert`: a TLS test cluster's URL), if any.
fn parts(database_url: &str) -> Result<(String, u16, String, String), Error> {
    let bad = |why: &str| Error::Command {
        program: "pgbouncer".into(),
        status: format!("cannot front {database_url:?}: {why}"),
        output: String::new(),
    };
    let (url, query) = database_url.split_once('?').unwrap_or((database_url, ""));
    let option = |key: &str| query.split('&').find_map(|p| p.strip_prefix(key)?.strip_prefix('='));
    let tls = match (option("sslmode"), option("sslrootcert")) {
        (Some(mode), Some(ca)) => format!("server_tls_sslmode = {mode}\nserver_tls_ca_file = {ca}\n"),
        (Some(mode), None) => format!("server_tls_sslmode = {mode}\n"),
        _ => String::new(),
    };
    let cfg: tokio_postgres::Config = url.parse().map_err(|_| bad("not a postgres:// URL"))?;
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => return Err(bad("it names no TCP host")),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    Ok((host, port, cfg.get_user().unwrap_or("postgres").to_owned(), tls))
}
