//! One fresh database per test, cloned from a template that is built once.

use std::hash::{BuildHasher as _, Hasher as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use tokio_postgres::{Client, NoTls};

use crate::cluster::{Server, shared_server};
use crate::{Error, InitError};

/// How long dropping a [`TestDatabase`] waits for `DROP DATABASE` before giving up on it.
const DROP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest sanitised template key kept in a template's name: with the `tpl_` prefix, the
/// hash and the `_build` suffix, names stay within PostgreSQL's 63 bytes.
const TEMPLATE_KEY_CHARS: usize = 44;

/// A database of its own for one test, cloned from a template; dropped (best effort) when
/// this value is.
///
/// Made by [`fresh_database`].
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    /// Where [`TestDatabase::connect`] connects: the URL, or the unix socket of a TLS cluster.
    local_url: String,
    /// Where to connect to drop the database: the server's maintenance URL.
    admin_url: String,
    /// The shared cluster, unless an external server is used.
    server: Option<Server>,
}

impl TestDatabase {
    /// The URL of this database, for a pool or a client. On the shared TLS cluster
    /// (`SKIPLOCK_TEST_TLS=1`) a `verify-full` URL naming the cluster's CA.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name, `t_` and 16 hex digits.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new connection to this database, its connection task spawned on the current Tokio
    /// runtime. Without TLS: over the shared TLS cluster's unix socket, over TCP otherwise.
    ///
    /// # Errors
    ///
    /// [`Error::Postgres`] if the server cannot be reached.
    pub async fn connect(&self) -> Result<Client, Error> {
        connect(&self.local_url, &self.name).await
    }

    /// The port of the shared cluster this database lives on; `None` on an external server.
    /// Other tests use that cluster too: to stop or restart a server, start your own
    /// [`Cluster`](crate::Cluster).
    pub fn port(&self) -> Option<u16> {
        self.server.as_ref().map(|s| s.port)
    }

    /// The server programs of the shared cluster (for `pg_dump`, `psql`…); `None` on an
    /// external server.
    pub fn bin_dir(&self) -> Option<&Path> {
        self.server.as_ref().map(|s| s.programs.bin.as_path())
    }

    /// The unix-socket directory of the shared cluster; `None` on an external server.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.server.as_ref().map(|s| s.dir.as_path())
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop cannot await, and blocking on the caller's runtime could deadlock it, so the
        // DROP runs on a thread with a runtime of its own. We wait for it: under nextest the
        // process exits right after the test, which would kill a detached thread mid-way.
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let (done, finished) = mpsc::channel();
        let spawned = std::thread::Builder::new().name("skiplock-testdb-drop".into()).spawn(move || {
            let _ = done.send(drop_database(&admin_url, &name));
        });
        let outcome = match spawned {
            Ok(_) => finished.recv_timeout(DROP_TIMEOUT).unwrap_or_else(|_| Err("timed out".into())),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = outcome {
            eprintln!("skiplock-testdb: could not drop test database {}: {e}", self.name);
        }
    }
}

fn drop_database(admin_url: &str, name: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime
        .block_on(async {
            let admin = connect(admin_url, "the maintenance database").await?;
            // FORCE: connections the test leaked must not keep the database alive.
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(name));
            admin.batch_execute(&sql).await.map_err(Error::pg(format!("drop database {name}")))
        })
        .map_err(|e| e.to_string())
}

/// Creates a database of its own for one test, cloned from the template `template_key`,
/// which `init` builds the first time it is asked for.
///
/// The server is the one named by `SKIPLOCK_TEST_DATABASE_URL`, else `DATABASE_URL` (its
/// user needs `CREATEDB`); with neither set, a cluster shared by all processes of this user,
/// started on first use and stopped about ten seconds after its last user exits. Under
/// `cargo nextest`, which runs each test in a process of its own, that makes one cluster for
/// the whole run rather than one per test.
///
/// Building the template is safe across processes: one builds it under an advisory lock,
/// in a scratch database renamed into place only when `init` succeeded, and the others wait
/// and clone it. A clone (`CREATE DATABASE … TEMPLATE`) copies the template's storage, tens of
/// milliseconds for a small schema, far cheaper than running migrations per test. `init` gets the URL of the scratch database; whatever
/// connections it leaves open are cut before the rename.
///
/// Templates are found by key and never rebuilt, and on an external server they outlive the
/// run: put a version or a hash of the schema in `template_key` so that a changed `init`
/// gets a new template.
///
/// Needs a Tokio runtime (connection tasks are spawned on it).
///
/// # Errors
///
/// [`Error::TemplateInit`] if `init` fails (the next call tries again), [`Error::Postgres`]
/// if the server cannot be reached or refuses (e.g. no `CREATEDB`), and the errors of
/// [`Cluster::start`](crate::Cluster::start) while starting the shared cluster.
///
/// # Example: a test with a migrated schema
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let db = skiplock_testdb::fresh_database("items-v1", |url| async move {
///     let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
///     tokio::spawn(connection);
///     client.batch_execute("CREATE TABLE item (id bigint PRIMARY KEY)").await?;
///     Ok(())
/// })
/// .await?;
/// let client = db.connect().await?;
/// client.execute("INSERT INTO item VALUES (1)", &[]).await?;
/// # Ok(())
/// # }
/// ```
pub async fn fresh_database<F, Fut>(template_key: &str, init: F) -> Result<TestDatabase, Error>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<(), InitError>>,
{
    let (admin_url, local_admin_url, server) = match external_url() {
        Some(url) => (url.clone(), url, None),
        None => {
            // Starting the cluster runs programs and waits on a file lock: blocking work.
            let server = match tokio::task::spawn_blocking(shared_server).await {
                Ok(started) => started?,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => return Err(Error::io("start the shared cluster in", "/tmp")(std::io::Error::other(e))),
            };
            // A TLS cluster's set-up connections go through the socket, without TLS.
            let local = if server.tls_host.is_some() { server.socket_url("postgres") } else { server.url("postgres") };
            (server.url("postgres"), local, Some(server))
        }
    };
    let template = template_name(template_key);
    let admin = connect(&local_admin_url, "the maintenance database").await?;
    ensure_template(&admin, &admin_url, &template, init).await?;

    let name = random_name();
    // Identifiers cannot be bound as parameters; both names are generated here, never input.
    let sql = format!("CREATE DATABASE {} TEMPLATE {}", quote(&name), quote(&template));
    admin.batch_execute(&sql).await.map_err(Error::pg(format!("create database {name} from {template}")))?;
    Ok(TestDatabase {
        url: with_dbname(&admin_url, &name),
        local_url: with_dbname(&local_admin_url, &name),
        name,
        admin_url: local_admin_url,
        server,
    })
}

/// Makes sure `template` exists, building it with `init` unless another session has.
async fn ensure_template<F, Fut>(admin: &Client, admin_url: &str, template: &str, init: F) -> Result<(), Error>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<(), InitError>>,
{
    // A session lock: if this process dies mid-init, the lock goes with its connection.
    let key = fnv1a(template.as_bytes()) as i64;
    admin.execute("SELECT pg_advisory_lock($1)", &[&key]).await.map_err(Error::pg("take the template lock"))?;
    let exists = admin
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&template])
        .await
        .map_err(Error::pg("look for the template"))?
        .is_some();
    if !exists {
        build_template(admin, admin_url, template, init).await?;
    }
    admin.execute("SELECT pg_advisory_unlock($1)", &[&key]).await.map_err(Error::pg("release the template lock"))?;
    Ok(())
}

/// Builds `template` in a scratch database and renames it into place, so that a crashed or
/// failed `init` never leaves a half-made template behind. Runs under the template lock.
async fn build_template<F, Fut>(admin: &Client, admin_url: &str, template: &str, init: F) -> Result<(), Error>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<(), InitError>>,
{
    let build = format!("{template}_build");
    let run = |sql: String| async move {
        let done = admin.batch_execute(&sql).await;
        done.map_err(Error::pg(sql))
    };
    // Left over by a process that died mid-init.
    run(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&build))).await?;
    run(format!("CREATE DATABASE {}", quote(&build))).await?;
    if let Err(source) = init(with_dbname(admin_url, &build)).await {
        let _ = run(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote(&build))).await;
        return Err(Error::TemplateInit { template: template.to_owned(), source });
    }
    // Cloning fails while anyone is connected to the template, now or later: refuse new
    // connections, then cut those `init` left (a pool, a connection task not yet finished).
    // The rename waits up to 5 s for the cut backends to exit.
    run(format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false", quote(&build))).await?;
    let cut = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1";
    admin.execute(cut, &[&build]).await.map_err(Error::pg("disconnect from the new template"))?;
    run(format!("ALTER DATABASE {} RENAME TO {}", quote(&build), quote(template))).await
}

/// Connects to `url`, naming `what` in the error, and spawns the connection task.
async fn connect(url: &str, what: &str) -> Result<Client, Error> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.map_err(Error::pg(format!("connect to {what}")))?;
    // Its errors also reach the client's next call, which reports them.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// The server the environment asks for, if any.
fn external_url() -> Option<String> {
    ["SKIPLOCK_TEST_DATABASE_URL", "DATABASE_URL"]
        .into_iter()
        .find_map(|var| std::env::var(var).ok().filter(|url| !url.trim().is_empty()))
}

/// A valid, stable database name for `key`: `tpl_`, the key in lower-case letters, digits and
/// underscores, and a hash of the raw key so that keys differing only in dropped characters
/// stay apart.
fn template_name(key: &str) -> String {
    let clean: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .take(TEMPLATE_KEY_CHARS)
        .collect();
    format!("tpl_{clean}_{:08x}", fnv1a(key.as_bytes()) as u32)
}

/// A name no other test database has: std's per-process random hash keys, our pid, a
/// counter and the clock.
fn random_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(SEQ.fetch_add(1, Ordering::Relaxed));
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos());
    format!("t_{:016x}", h.finish())
}

/// `url` with its database replaced by `dbname`; both URL (`postgres://…/db?…`) and
/// key-value (`host=… dbname=…`) forms, as libpq and tokio-postgres accept them.
fn with_dbname(url: &str, dbname: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        // In the key-value form a repeated key overrides the earlier one.
        return format!("{url} dbname={dbname}");
    };
    let query_start = url[scheme_end..].find('?').map_or(url.len(), |i| scheme_end + i);
    let path_start = url[scheme_end..query_start].find('/').map_or(query_start, |i| scheme_end + i);
    format!("{}/{dbname}{}", &url[..path_start], &url[query_start..])
}

/// A quoted SQL identifier.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// 64-bit FNV-1a: stable across processes and Rust versions, unlike std's hashers.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_get_the_new_database() {
        let cases = [
            ("postgres://u:p@h:5/old", "postgres://u:p@h:5/new"),
            ("postgres://u@h:5/old?sslmode=disable", "postgres://u@h:5/new?sslmode=disable"),
            ("postgresql://h", "postgresql://h/new"),
            ("postgres://h?x=y", "postgres://h/new?x=y"),
            ("host=h user=u dbname=old", "host=h user=u dbname=old dbname=new"),
        ];
        for (url, want) in cases {
            assert_eq!(with_dbname(url, "new"), want, "{url}");
        }
    }

    #[test]
    fn template_names_are_valid_and_distinct() {
        let long = template_name(&"Ä-x".repeat(100));
        assert!(long.len() + "_build".len() <= 63, "{long}");
        assert!(long.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{long}");
        assert_eq!(template_name("My Schema v1"), template_name("My Schema v1"));
        assert_ne!(template_name("a-b"), template_name("a_b"));
        assert!(template_name("My Schema v1").starts_with("tpl_my_schema_v1_"));
        assert_ne!(random_name(), random_name());
    }
}
