//! [`ClientBuilder`]: a client's settings, and the tuning of its
//! connections (JIT off, generic plans, keepalives, timeouts).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::facade::{Client, Inner, POOL_SIZE_DEFAULT, POOL_TIMEOUT_DEFAULT, STATEMENT_TIMEOUT_DEFAULT};
use super::wakeups::{self, NOTIFY_INTERVAL_DEFAULT};
use crate::db::{Db, DbConfig, StatementMode};
use crate::error::Result;
use crate::schema::Schema;
use crate::tls::{SslMode, TlsConfig, TlsConnector};
use crate::validate;

/// Settings for a [`Client`]. Build with [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    url: String,
    schema: Schema,
    pool_size: usize,
    pool_timeout: Duration,
    statement_mode: StatementMode,
    statement_timeout: Option<Duration>,
    args_max_bytes: usize,
    application_name: String,
    notify_interval: Duration,
    combine_enqueues: bool,
    ssl_mode: Option<SslMode>,
    ssl_root_cert: Option<PathBuf>,
    ssl_client_cert: Option<(PathBuf, PathBuf)>,
    pool: Option<deadpool_postgres::Pool>,
}

impl std::fmt::Debug for ClientBuilder {
    /// Everything but the URL (which may hold a password) and the pool.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("statement_mode", &self.statement_mode)
            .field("own_pool", &self.pool.is_none())
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// The defaults, for the database at `url`.
    pub(super) fn new(url: String) -> Self {
        ClientBuilder {
            url,
            schema: Schema::default(),
            pool_size: POOL_SIZE_DEFAULT,
            pool_timeout: POOL_TIMEOUT_DEFAULT,
            statement_mode: StatementMode::default(),
            statement_timeout: Some(STATEMENT_TIMEOUT_DEFAULT),
            notify_interval: NOTIFY_INTERVAL_DEFAULT,
            combine_enqueues: true,
            args_max_bytes: validate::ARGS_MAX_BYTES_DEFAULT,
            application_name: "skiplock".to_owned(),
            ssl_mode: None,
            ssl_root_cert: None,
            ssl_client_cert: None,
            pool: None,
        }
    }

    /// The schema skiplock lives in (default `skiplock`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for `schema` when the name is not a plain identifier.
    pub fn schema(mut self, schema: &str) -> Result<Self> {
        self.schema = Schema::new(schema)?;
        Ok(self)
    }

    /// Most connections the pool opens (default [`POOL_SIZE_DEFAULT`]).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Runs the client's statements on `pool`, a `deadpool-postgres` pool of
    /// yours, instead of a pool of its own: one set of connections for your
    /// queries and the queue's. skiplock sets nothing on these connections
    /// (its own pool's connections start with `jit=off` and
    /// `plan_cache_mode=force_generic_plan`, see the
    /// [`ClientBuilder::statement_mode`] docs), so your queries on it see
    /// your settings only; [`StatementMode::Prepared`] caches skiplock's
    /// statements on them, as `prepare_cached` does yours.
    /// [`ClientBuilder::pool_size`] and [`ClientBuilder::pool_timeout`] then
    /// apply only to the small pools a [`Worker`](crate::Worker) opens
    /// beside it (one connection for heartbeats) and to the LISTEN
    /// connection, which are made from the builder's URL and TLS settings.
    ///
    /// Size the pool for both: a worker may use `queues × 2 + 11` of its
    /// connections at once (two producers per served queue, two completer
    /// flushes, the statistics writer, the leader's maintenance services;
    /// docs/OPERATIONS.md, "Connections"); fewer make them wait for each
    /// other and for your queries.
    ///
    /// # Example: one pool for the web app and the queue
    ///
    /// ```no_run
    /// # fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use skiplock::deadpool_postgres::{Manager, Pool};
    /// use skiplock::tokio_postgres::NoTls;
    ///
    /// let url = "postgres://app@localhost/app";
    /// let pool = Pool::builder(Manager::new(url.parse()?, NoTls)).max_size(20).build()?;
    /// let client = skiplock::Client::builder(url).pool(pool.clone()).build()?;
    /// // `pool` serves your handlers' queries; `client` enqueues and runs jobs on it too.
    /// # Ok(()) }
    /// ```
    pub fn pool(mut self, pool: deadpool_postgres::Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// How long to wait for a free connection (default [`POOL_TIMEOUT_DEFAULT`]).
    pub fn pool_timeout(mut self, d: Duration) -> Self {
        self.pool_timeout = d;
        self
    }

    /// Cached prepared statements (default, fastest) or unnamed statements
    /// (required behind PgBouncer in transaction pooling mode).
    pub fn statement_mode(mut self, mode: StatementMode) -> Self {
        self.statement_mode = mode;
        self
    }

    /// How long any one statement may take before the client gives up on it
    /// and drops its connection (default [`STATEMENT_TIMEOUT_DEFAULT`]; `None`
    /// waits forever). Guards against network paths that stall without
    /// closing.
    pub fn statement_timeout(mut self, d: Option<Duration>) -> Self {
        self.statement_timeout = d;
        self
    }

    /// Shortest time between two wake-ups (NOTIFY) this client sends for
    /// one queue (default [`NOTIFY_INTERVAL_DEFAULT`]; zero: one per enqueue).
    /// NOTIFYing commits run one at a time in PostgreSQL, so limiting them
    /// keeps many small enqueues fast; a trailing wake-up covers the
    /// enqueues in between.
    pub fn notify_interval(mut self, interval: Duration) -> Self {
        self.notify_interval = interval;
        self
    }

    /// Whether concurrent [`Client::enqueue`] calls (one job each, no
    /// unique key) share statements and commits (default `true`). Each call
    /// still returns once its own job is committed, and a job the server
    /// refuses fails alone; a lone call is sent at once. With `false`,
    /// every call is a statement and a commit of its own.
    ///
    /// # Example
    ///
    /// ```
    /// let client = skiplock::Client::builder("postgres://localhost/app").combine_enqueues(false).build()?;
    /// # Ok::<(), skiplock::Error>(())
    /// ```
    pub fn combine_enqueues(mut self, on: bool) -> Self {
        self.combine_enqueues = on;
        self
    }

    /// Largest args document accepted, in bytes (default
    /// [`ARGS_MAX_BYTES_DEFAULT`](crate::ARGS_MAX_BYTES_DEFAULT)).
    pub fn args_max_bytes(mut self, n: usize) -> Self {
        self.args_max_bytes = n;
        self
    }

    /// The `application_name` the pool's connections report (default `skiplock`).
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// How connections use TLS, overriding the URL's `sslmode` (default:
    /// the URL's, else [`SslMode::Prefer`], as libpq). See [`crate::tls`]
    /// for what each mode checks.
    ///
    /// # Example: only a server whose certificate names its host
    ///
    /// ```no_run
    /// use skiplock::{Client, SslMode};
    /// let client = Client::builder("postgres://app@db.internal/app")
    ///     .ssl_mode(SslMode::VerifyFull)
    ///     .ssl_root_cert("/etc/ssl/certs/db-ca.pem")
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// The CA certificates (PEM) that must have signed the server's
    /// certificate, overriding the URL's `sslrootcert` (default
    /// `~/.postgresql/root.crt`, if it exists). `"system"` means the
    /// system's trusted roots, and requires [`SslMode::VerifyFull`].
    pub fn ssl_root_cert(mut self, path: impl Into<PathBuf>) -> Self {
        self.ssl_root_cert = Some(path.into());
        self
    }

    /// A client certificate (PEM, with its chain) and its private key
    /// (PEM; permissions 0600 or less), for servers that authenticate
    /// clients by certificate (`clientcert=verify-full` or `cert` in
    /// pg_hba.conf). Overrides the URL's `sslcert` and `sslkey`.
    pub fn ssl_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.ssl_client_cert = Some((cert.into(), key.into()));
        self
    }

    /// The connection settings and the TLS connector, from the URL and
    /// this builder, tuned.
    pub(super) fn pg_settings(&self) -> Result<(tokio_postgres::Config, TlsConnector)> {
        let (mut cfg, mut tls) = TlsConfig::from_url(&self.url)?;
        if let Some(mode) = self.ssl_mode {
            tls.set_mode(mode);
        }
        if let Some(path) = &self.ssl_root_cert {
            tls.set_root_cert(path.clone());
        }
        if let Some((cert, key)) = &self.ssl_client_cert {
            tls.set_client_cert(cert.clone(), key.clone());
        }
        cfg.ssl_mode(tls.pg_mode());
        let connector = tls.connector()?;
        if self.statement_mode == StatementMode::Prepared {
            // Queue statements are short; JIT compiling them costs more than
            // running them. And their generic plans are the right ones (the
            // EXPLAIN tests check them): left to choose, PostgreSQL re-planned
            // the worker's statement at every execution, 0.58 ms of planning
            // beside 0.88 ms of running. (Not behind PgBouncer, which refuses
            // startup options; there, statements stay below jit_above_cost
            // and unnamed statements are planned each time anyway.)
            const OPTIONS: &str = "-c jit=off -c plan_cache_mode=force_generic_plan";
            let options = match cfg.get_options() {
                Some(o) => format!("{o} {OPTIONS}"),
                None => OPTIONS.to_owned(),
            };
            cfg.options(&options);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name(&self.application_name);
        }
        // Notice a peer that vanished without closing (a dead host, a dropped
        // route) in about a minute instead of the kernel's two hours.
        cfg.keepalives(true).keepalives_idle(Duration::from_secs(30)).keepalives_interval(Duration::from_secs(10));
        // Each host of a multi-host URL gets its share of the pool's wait, so
        // that a primary that vanished (no answer to the connect) leaves time
        // to reach the next host; a connect_timeout in the URL wins.
        if cfg.get_connect_timeout().is_none() {
            let hosts = u32::try_from(cfg.get_hosts().len().max(cfg.get_hostaddrs().len()).max(1)).unwrap_or(u32::MAX);
            cfg.connect_timeout(self.pool_timeout / hosts);
        }
        Ok((cfg, connector))
    }

    /// Opens one connection with exactly the settings the client's pool
    /// would use (URL, TLS, `application_name`, session options), for
    /// statements of your own: a tool's checks, a benchmark's bare SQL.
    /// The connection is driven on a spawned task until the client is
    /// dropped. [`connect_raw`](crate::connect_raw) does the same from a
    /// URL alone.
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`], and [`Error::Tls`](crate::Error::Tls)
    /// naming the cause when the TLS connection fails, or the database's
    /// error.
    ///
    /// # Example: one connection beside the pool
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let builder = skiplock::Client::builder("postgres://app@db/app?sslmode=verify-full")
    ///     .application_name("my-tool");
    /// let pg = builder.connect_single().await?;
    /// pg.batch_execute("SELECT 1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect_single(&self) -> Result<tokio_postgres::Client> {
        let (cfg, tls) = self.pg_settings()?;
        tls.connect(&cfg).await
    }

    /// Builds the client. Connections open lazily, on first use; the TLS
    /// files are read now.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for
    /// `database_url` when it cannot be parsed, and naming the option
    /// (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`) when a TLS setting
    /// or file is wrong.
    pub fn build(self) -> Result<Client> {
        let (cfg, tls) = self.pg_settings()?;
        let db = Db::new(DbConfig {
            pg: cfg,
            tls,
            schema: self.schema,
            pool_size: self.pool_size,
            pool_timeout: self.pool_timeout,
            mode: self.statement_mode,
            statement_timeout: self.statement_timeout,
            pool: self.pool,
        })?;
        Ok(Client::new(db, self.args_max_bytes, self.notify_interval, self.combine_enqueues))
    }
}

impl Client {
    /// Settings for a client of the database at `database_url`
    /// (`postgres://user:password@host:port/db`).
    pub fn builder(database_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(database_url.into())
    }

    /// A client with default settings. Connects lazily.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for `database_url` when it cannot be parsed.
    pub fn connect(database_url: &str) -> Result<Client> {
        Client::builder(database_url).build()
    }

    fn new(db: Db, args_max_bytes: usize, notify_interval: Duration, combine: bool) -> Client {
        Client {
            inner: Arc::new(Inner {
                db,
                args_max_bytes,
                wakeups: wakeups::Wakeups::new(notify_interval),
                combine,
                coalescer: Default::default(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Client;

    #[test]
    fn each_host_gets_its_share_of_the_pool_timeout_unless_the_url_says() {
        let timeout = |url: &str| {
            let b = Client::builder(url).pool_timeout(Duration::from_secs(30));
            b.pg_settings().unwrap().0.get_connect_timeout().copied()
        };
        assert_eq!(timeout("postgres://a/db"), Some(Duration::from_secs(30)));
        assert_eq!(timeout("postgres://a,b,c/db?target_session_attrs=read-write"), Some(Duration::from_secs(10)));
        assert_eq!(timeout("host=a,b connect_timeout=3"), Some(Duration::from_secs(3)));
    }
}
