//! [`Client`]: the handle a service keeps to enqueue jobs, drive their
//! lifecycle and act on them as an operator. Cheap to clone; holds a pool.

mod admin;
pub(crate) mod enqueue;
mod lifecycle;
mod operations;
mod wakeups;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use admin::{CancelResult, JobFilter, QueueInfo, QueueStats};
pub use enqueue::{EnqueueOptions, Enqueued, NewJob};
pub(crate) use lifecycle::Written;
pub use lifecycle::{ERROR_TEXT_MAX, Finish, FinishReport, HeartbeatReport, Outcome, PromoteReport, RescueReport};
pub use wakeups::NOTIFY_INTERVAL_DEFAULT;

use crate::db::{self, Exec, Pooled, StatementMode, Statements};
use crate::error::{Error, Result};
use crate::job::Job;
use crate::schema::{self, MigrateReport, Schema};
use crate::tls::{SslMode, TlsConfig, TlsConnector};
use crate::validate;

/// Default size of the client's connection pool.
pub const POOL_SIZE_DEFAULT: usize = 16;
/// Default wait for a pooled connection before [`Error::Pool`].
pub const POOL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default limit on one statement's round trip: 60 seconds.
pub const STATEMENT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

/// Settings for a [`Client`]. Build with [`Client::builder`].
#[derive(Debug, Clone)]
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
    ssl_mode: Option<SslMode>,
    ssl_root_cert: Option<PathBuf>,
    ssl_client_cert: Option<(PathBuf, PathBuf)>,
}

impl ClientBuilder {
    /// The schema skiplock lives in (default `skiplock`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for `schema` when the name is not a plain identifier.
    pub fn schema(mut self, schema: &str) -> Result<Self> {
        self.schema = Schema::new(schema)?;
        Ok(self)
    }

    /// Most connections the pool opens (default [`POOL_SIZE_DEFAULT`]).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
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
    /// this builder.
    fn pg_settings(&self) -> Result<(tokio_postgres::Config, TlsConnector)> {
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
    /// As [`ClientBuilder::build`], and [`Error::Tls`] naming the cause
    /// when the TLS connection fails, or the database's error.
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
    /// [`Error::InvalidInput`] for `database_url` when it cannot be parsed,
    /// and naming the option (`sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey`) when a TLS setting or file is wrong.
    pub fn build(self) -> Result<Client> {
        let (cfg, tls) = self.pg_settings()?;
        let pool = build_pool(&cfg, &tls, self.pool_size, self.pool_timeout)?;
        Ok(Client {
            inner: Arc::new(Inner {
                stmts: Statements::new(&self.schema),
                schema: self.schema,
                pool,
                tls,
                pg_config: cfg,
                pool_timeout: self.pool_timeout,
                mode: self.statement_mode,
                statement_timeout: self.statement_timeout,
                args_max_bytes: self.args_max_bytes,
                notify_interval: self.notify_interval,
                state_type: tokio::sync::OnceCell::new(),
                wakeups: wakeups::Wakeups::new(self.notify_interval),
            }),
        })
    }
}

/// A pool of at most `size` connections made with `cfg`.
fn build_pool(
    cfg: &tokio_postgres::Config,
    tls: &TlsConnector,
    size: usize,
    timeout: Duration,
) -> Result<deadpool_postgres::Pool> {
    let mgr = deadpool_postgres::Manager::from_config(
        cfg.clone(),
        tls.clone(),
        deadpool_postgres::ManagerConfig { recycling_method: deadpool_postgres::RecyclingMethod::Fast },
    );
    deadpool_postgres::Pool::builder(mgr)
        .max_size(size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Pool(e.to_string()))
}

/// Jobs from which a chunk goes through COPY: below, the COPY's three round
/// trips cost more than the multi-row INSERT's one.
pub(crate) const COPY_MIN_JOBS: usize = 100;

/// Whether a chunk goes through COPY: big enough, and no unique keys (COPY
/// cannot resolve their conflicts).
fn use_copy(cols: &enqueue::Columns) -> bool {
    cols.len() >= COPY_MIN_JOBS && cols.unique_key.iter().all(Option::is_none) && !cols.unique_args.contains(&true)
}

/// Strips a URL's password from a message that may quote it.
pub(crate) fn redact_error(msg: &str, url: &str) -> String {
    match url.split_once("://").and_then(|(_, rest)| rest.split_once('@')).and_then(|(auth, _)| auth.split_once(':')) {
        Some((_, pw)) if !pw.is_empty() => redact_credentials(&msg.replace(pw, "***")),
        _ => redact_credentials(msg),
    }
}

/// Masks the password of every `scheme://user:password@host` in `text`, and
/// every `password=…` of a key-value connection string or `PGPASSWORD=…` of
/// an environment (any case; spaces around `=`; a quoted value, `'…'` or
/// `"…"` with backslash escapes, masked whole).
///
/// # Example: a connection error quoting its string
///
/// ```
/// let text = "cannot connect with host=db password='a b' to postgres://ada:s3cret@db/app";
/// assert_eq!(
///     skiplock::redact_credentials(text),
///     "cannot connect with host=db password=*** to postgres://ada:***@db/app"
/// );
/// ```
pub fn redact_credentials(text: &str) -> String {
    /// The length of the value at the start of `s`: up to its closing quote
    /// when quoted, else up to whitespace.
    fn value_len(s: &str) -> usize {
        let Some(quote) = s.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            return s.find(char::is_whitespace).unwrap_or(s.len());
        };
        let mut escaped = false;
        for (i, c) in s.char_indices().skip(1) {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == quote => return i + 1,
                _ => {}
            }
        }
        s.len()
    }

    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail.find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'').unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@').and_then(|a| authority[..a].find(':').map(|c| (c, a))) {
            Some((colon, at_sign)) => {
                out.push_str(&authority[..=colon]);
                out.push_str("***");
                out.push_str(&authority[at_sign..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    // ASCII lower case keeps every byte offset, so offsets in `lower` are
    // offsets in `out`.
    let lower = out.to_ascii_lowercase();
    let spaces = |s: &str| s.len() - s.trim_start_matches([' ', '\t']).len();
    let mut masked = String::with_capacity(out.len());
    let (mut copied, mut from) = (0, 0);
    while let Some(found) = lower[from..].find("password") {
        let key_end = from + found + "password".len();
        let after = &out[key_end..];
        let eq = spaces(after);
        if !after[eq..].starts_with('=') {
            from = key_end; // prose: "password authentication failed"
            continue;
        }
        let value = key_end + eq + 1 + spaces(&after[eq + 1..]);
        masked.push_str(&out[copied..value]);
        masked.push_str("***");
        copied = value + value_len(&out[value..]);
        from = copied;
    }
    masked.push_str(&out[copied..]);
    masked
}

#[cfg(test)]
mod tests {
    use super::redact_credentials;

    #[test]
    fn each_host_gets_its_share_of_the_pool_timeout_unless_the_url_says() {
        use std::time::Duration;
        let timeout = |url: &str| {
            let b = super::Client::builder(url).pool_timeout(Duration::from_secs(30));
            b.pg_settings().unwrap().0.get_connect_timeout().copied()
        };
        assert_eq!(timeout("postgres://a/db"), Some(Duration::from_secs(30)));
        assert_eq!(timeout("postgres://a,b,c/db?target_session_attrs=read-write"), Some(Duration::from_secs(10)));
        assert_eq!(timeout("host=a,b connect_timeout=3"), Some(Duration::from_secs(3)));
    }

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            redact_credentials("connect postgres://app:s3cret@db:5432/x failed"),
            "connect postgres://app:***@db:5432/x failed"
        );
        assert_eq!(redact_credentials("host=db password=hunter2 user=a"), "host=db password=*** user=a");
        assert_eq!(redact_credentials("see https://example.com/a@b"), "see https://example.com/a@b");
        assert_eq!(redact_credentials("no urls"), "no urls");
    }

    #[test]
    fn quoted_and_differently_cased_passwords_are_masked_whole() {
        // libpq's key-value strings quote values with spaces, and allow
        // spaces around `=` and backslash escapes inside quotes.
        assert_eq!(redact_credentials("host=db password='a b' user=x"), "host=db password=*** user=x");
        assert_eq!(redact_credentials(r"password='it\'s a secret' user=x"), "password=*** user=x");
        assert_eq!(redact_credentials(r#"password="a b" user=x"#), "password=*** user=x");
        assert_eq!(redact_credentials("host=db password = 'a b' user=x"), "host=db password = *** user=x");
        assert_eq!(redact_credentials("password='never closed"), "password=***");
        // The environment's names, shells' quoting, any case.
        assert_eq!(redact_credentials("PGPASSWORD=hunter2 psql -h db"), "PGPASSWORD=*** psql -h db");
        assert_eq!(redact_credentials("export PGPASSWORD='a b'; psql"), "export PGPASSWORD=***; psql");
        assert_eq!(redact_credentials("Password=hunter2"), "Password=***");
        // Prose about passwords is left alone.
        assert_eq!(
            redact_credentials("password authentication failed for user \"ada\""),
            "password authentication failed for user \"ada\""
        );
    }
}

/// The handle to a skiplock queue in one database schema.
///
/// # Example: enqueue a typed job
///
/// ```no_run
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Resize { image_id: u64 }
/// impl skiplock::Job for Resize { const KIND: &'static str = "resize"; }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = skiplock::Client::connect("postgres://localhost/app")?;
/// client.migrate().await?;
/// let job = client.enqueue(&Resize { image_id: 7 }, Default::default()).await?;
/// println!("enqueued job {}", job.id);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    pool: deadpool_postgres::Pool,
    /// Every connection's TLS, the pool's and the LISTEN connection's.
    tls: TlsConnector,
    pg_config: tokio_postgres::Config,
    pool_timeout: Duration,
    schema: Schema,
    stmts: Statements,
    mode: StatementMode,
    statement_timeout: Option<Duration>,
    args_max_bytes: usize,
    notify_interval: Duration,
    /// The type of the `job_state` enum (its OID differs per database), for
    /// binary COPY.
    state_type: tokio::sync::OnceCell<postgres_types::Type>,
    /// The NOTIFY rate limit's bookkeeping.
    wakeups: wakeups::Wakeups,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("schema", &self.inner.schema)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Settings for a client of the database at `database_url`
    /// (`postgres://user:password@host:port/db`).
    pub fn builder(database_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: database_url.into(),
            schema: Schema::default(),
            pool_size: POOL_SIZE_DEFAULT,
            pool_timeout: POOL_TIMEOUT_DEFAULT,
            statement_mode: StatementMode::default(),
            statement_timeout: Some(STATEMENT_TIMEOUT_DEFAULT),
            notify_interval: NOTIFY_INTERVAL_DEFAULT,
            args_max_bytes: validate::ARGS_MAX_BYTES_DEFAULT,
            application_name: "skiplock".to_owned(),
            ssl_mode: None,
            ssl_root_cert: None,
            ssl_client_cert: None,
        }
    }

    /// A client with default settings. Connects lazily.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for `database_url` when it cannot be parsed.
    pub fn connect(database_url: &str) -> Result<Client> {
        Client::builder(database_url).build()
    }

    /// The schema this client uses.
    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// How this client sends statements.
    pub fn statement_mode(&self) -> StatementMode {
        self.inner.mode
    }

    /// The connection settings, for opening dedicated connections (the
    /// worker's LISTEN connection).
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.inner.pg_config
    }

    /// The TLS connector every connection of this client uses, for opening
    /// dedicated connections with [`Client::pg_config`]:
    /// `client.pg_config().connect(client.tls_connector().clone())`.
    pub fn tls_connector(&self) -> &TlsConnector {
        &self.inner.tls
    }

    /// The connection pool.
    pub fn pool(&self) -> &deadpool_postgres::Pool {
        &self.inner.pool
    }

    /// Applies pending migrations; see [`crate::migrate`].
    ///
    /// # Errors
    ///
    /// As [`crate::migrate`].
    pub async fn migrate(&self) -> Result<MigrateReport> {
        let mut conn = self.conn().await?;
        let client: &mut tokio_postgres::Client = &mut conn;
        schema::migrate(client, &self.inner.schema).await
    }

    /// The same client on a pool of its own of `size` connections: for the
    /// worker's heartbeat, which must never wait behind producers and
    /// maintenance for a connection.
    pub(crate) fn dedicated(&self, size: usize) -> Result<Client> {
        let i = &self.inner;
        Ok(Client {
            inner: Arc::new(Inner {
                pool: build_pool(&i.pg_config, &i.tls, size, i.pool_timeout)?,
                tls: i.tls.clone(),
                pg_config: i.pg_config.clone(),
                pool_timeout: i.pool_timeout,
                schema: i.schema.clone(),
                stmts: Statements::new(&i.schema),
                mode: i.mode,
                statement_timeout: i.statement_timeout,
                args_max_bytes: i.args_max_bytes,
                notify_interval: i.notify_interval,
                state_type: tokio::sync::OnceCell::new(),
                wakeups: wakeups::Wakeups::new(i.notify_interval),
            }),
        })
    }

    pub(crate) fn stmts(&self) -> &Statements {
        &self.inner.stmts
    }

    pub(crate) async fn conn(&self) -> Result<deadpool_postgres::Client> {
        self.inner.pool.get().await.map_err(|e| self.inner.tls.explain(e.into()))
    }

    pub(crate) fn pg(&self, e: db::DbError) -> Error {
        Error::from_db(e, self.inner.schema.name())
    }

    /// Error text as it may be stored: without this client's database
    /// password or any URL's credentials (a handler's error may quote a
    /// connection string).
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = redact_credentials(text);
        if let Some(pw) = self.inner.pg_config.get_password()
            && !pw.is_empty()
        {
            out = out.replace(&*String::from_utf8_lossy(pw), "***");
        }
        out
    }

    /// A pooled connection that runs statements in this client's mode and
    /// within its statement timeout.
    pub(crate) async fn db(&self) -> Result<Pooled> {
        Ok(Pooled::new(self.conn().await?, self.inner.mode, self.inner.statement_timeout))
    }

    /// Enqueues one typed job, in its own transaction.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the field for bad options or args;
    /// database errors as [`Error::Transient`] or [`Error::Database`].
    pub async fn enqueue<J: Job>(&self, job: &J, opts: EnqueueOptions) -> Result<Enqueued> {
        self.enqueue_job(NewJob::typed(job, opts)?).await
    }

    /// Enqueues one job of any kind, in its own transaction.
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue`].
    pub async fn enqueue_job(&self, job: NewJob) -> Result<Enqueued> {
        let mut out = self.enqueue_many(vec![job]).await?;
        Ok(out.pop().expect("one result per job"))
    }

    /// Enqueues many jobs in one statement and one transaction: all or none.
    /// Jobs whose unique key is taken come back with `inserted: false` and
    /// the holder's id. Workers of each queue get one wake-up.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] naming the first bad job (`jobs[i].field`);
    /// nothing is inserted then.
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let chunks = enqueue::chunks(jobs, self.inner.args_max_bytes)?;
        match chunks.as_slice() {
            [] => Ok(Vec::new()),
            // One statement is atomic by itself.
            [one] if !use_copy(one) => self.insert_columns(&self.db().await?, one).await,
            all => {
                // Several statements (or a COPY and its wake-ups): one
                // transaction, all or none.
                let mut conn = self.conn().await?;
                let tx = conn.transaction().await.map_err(|e| self.pg(e.into()))?;
                let mut out = Vec::new();
                for cols in all {
                    out.extend(self.insert_chunk(&tx, tx.client(), cols).await?);
                }
                tx.commit().await.map_err(|e| self.pg(e.into()))?;
                Ok(out)
            }
        }
    }

    /// Enqueues a typed job inside the caller's open transaction: the job
    /// exists, and its wake-up is sent, only if that transaction commits.
    ///
    /// Works with a `tokio_postgres::Transaction`, a `deadpool_postgres`
    /// transaction, or a plain client (autocommit). For `sqlx`, see
    /// `enqueue_sqlx` (feature `sqlx`).
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue`]. An error leaves the caller's transaction
    /// aborted, as any failed statement does.
    ///
    /// # Example: a job that commits with the row it is about
    ///
    /// ```no_run
    /// # use serde::{Deserialize, Serialize};
    /// # #[derive(Serialize, Deserialize)] struct Welcome { user_id: i64 }
    /// # impl skiplock::Job for Welcome { const KIND: &'static str = "welcome"; }
    /// # async fn run(client: skiplock::Client, mut pg: tokio_postgres::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// let tx = pg.transaction().await?;
    /// let row = tx.query_one("INSERT INTO users (name) VALUES ($1) RETURNING id", &[&"ada"]).await?;
    /// client.enqueue_tx(&tx, &Welcome { user_id: row.get(0) }, Default::default()).await?;
    /// tx.commit().await?; // both or neither
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_tx<J: Job>(&self, tx: &impl Executor, job: &J, opts: EnqueueOptions) -> Result<Enqueued> {
        let mut out = self.enqueue_many_tx(tx, vec![NewJob::typed(job, opts)?]).await?;
        Ok(out.pop().expect("one result per job"))
    }

    /// Enqueues many jobs inside the caller's open transaction.
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue_many`].
    pub async fn enqueue_many_tx(&self, tx: &impl Executor, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let mut out = Vec::new();
        for cols in enqueue::chunks(jobs, self.inner.args_max_bytes)? {
            out.extend(self.insert_chunk(tx.as_exec(), tx.pg_client(), &cols).await?);
        }
        Ok(out)
    }

    /// Enqueues many jobs through `db`, a transaction the library holds (the
    /// leader's, for periodic jobs), with the multi-row INSERT.
    pub(crate) async fn enqueue_exec(&self, db: &dyn Exec, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        let mut out = Vec::new();
        for cols in enqueue::chunks(jobs, self.inner.args_max_bytes)? {
            out.extend(self.insert_columns(db, &cols).await?);
        }
        Ok(out)
    }

    /// Inserts one chunk: through COPY when it is big and has no unique
    /// keys, else with the multi-row INSERT.
    async fn insert_chunk(
        &self,
        db: &dyn Exec,
        pg: &tokio_postgres::Client,
        cols: &enqueue::Columns,
    ) -> Result<Vec<Enqueued>> {
        if !use_copy(cols) {
            return self.insert_columns(db, cols).await;
        }
        let state_type = self
            .inner
            .state_type
            .get_or_try_init(|| async {
                let sql = self.inner.schema.render("SELECT $1::{schema}.job_state");
                Ok::<_, tokio_postgres::Error>(pg.prepare(&sql).await?.params()[0].clone())
            })
            .await
            .map_err(|e| self.pg(e.into()))?;
        let (wake, later) = self.inner.wakeups.decide(cols.due_queues());
        let out = db::copy::insert(pg, &self.inner.stmts, cols, state_type, &wake).await.map_err(|e| self.pg(e))?;
        self.wake_later(later);
        Ok(out)
    }

    /// Runs one insert statement, then looks up the holders of any unique
    /// keys that were taken. A holder that finished in between frees its
    /// key, so those rows are inserted again (a rare race; at most thrice).
    async fn insert_columns(&self, db: &dyn Exec, cols: &enqueue::Columns) -> Result<Vec<Enqueued>> {
        let s = &self.inner.stmts;
        if !(0..cols.len()).any(|i| cols.has_unique(i)) {
            // No unique keys: the short statements.
            let (wake, later) = self.inner.wakeups.decide(cols.due_queues());
            let ids = if cols.len() == 1 {
                vec![db::job::insert_one(db, s, cols, 0, !wake.is_empty()).await.map_err(|e| self.pg(e))?]
            } else {
                db::job::insert_plain(db, s, cols, &wake).await.map_err(|e| self.pg(e))?
            };
            self.wake_later(later);
            return Ok(ids.into_iter().map(|id| Enqueued { id, inserted: true }).collect());
        }
        let mut rounds = enqueue::Resolver::new(cols);
        while let Some(cols) = rounds.next_round() {
            let (wake, later) = self.inner.wakeups.decide(cols.due_queues());
            let out = db::job::insert(db, s, &cols, &wake).await.map_err(|e| self.pg(e))?;
            self.wake_later(later);
            let keys = out.taken_keys();
            let holders = if keys.is_empty() {
                Default::default()
            } else {
                db::job::holders(db, s, &keys).await.map_err(|e| self.pg(e))?
            };
            rounds.record(&out, &holders);
        }
        rounds.finish()
    }

    /// Sends the trailing wake-ups the rate limit held back, each when its
    /// queue's interval ends. (Inside a caller's transaction that has not
    /// committed by then, a worker woken early finds nothing and falls back
    /// to polling for that job.)
    pub(crate) fn wake_later(&self, later: Vec<(String, std::time::Instant)>) {
        for (queue, due) in later {
            let client = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(due.into()).await;
                let sent = async {
                    let db = client.db().await?;
                    db::job::notify(&db, client.stmts(), std::slice::from_ref(&queue)).await.map_err(|e| client.pg(e))
                }
                .await;
                client.inner.wakeups.trailing_sent(&queue);
                if let Err(e) = sent {
                    tracing::debug!(%queue, error = %e, "trailing wake-up not sent; workers will poll");
                }
            });
        }
    }

    #[cfg(feature = "sqlx")]
    pub(crate) fn wakeups_decide(&self, cols: &enqueue::Columns) -> (Vec<String>, Vec<(String, std::time::Instant)>) {
        self.inner.wakeups.decide(cols.due_queues())
    }

    #[cfg(feature = "sqlx")]
    /// Enqueues jobs inside a caller's `sqlx` transaction (or connection):
    /// `client.enqueue_sqlx(&mut *tx, jobs)`.
    ///
    /// # Errors
    ///
    /// As [`Client::enqueue_many`]; database errors as [`Error::Sqlx`].
    pub async fn enqueue_sqlx(&self, conn: &mut sqlx::PgConnection, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        crate::sqlx_support::enqueue(self, conn, jobs).await
    }

    #[cfg(feature = "sqlx")]
    pub(crate) fn args_max_bytes(&self) -> usize {
        self.inner.args_max_bytes
    }
}

/// A connection or transaction that [`Client::enqueue_tx`] can write
/// through: `tokio_postgres::{Client, Transaction}` and their `deadpool`
/// wrappers. Sealed; statements run unnamed, leaving nothing behind.
pub trait Executor: sealed::Sealed {}

/// The tokio-postgres client under each executor type.
trait PgClient {
    fn pg(&self) -> &tokio_postgres::Client;
}
impl PgClient for tokio_postgres::Client {
    fn pg(&self) -> &tokio_postgres::Client {
        self
    }
}
impl PgClient for tokio_postgres::Transaction<'_> {
    fn pg(&self) -> &tokio_postgres::Client {
        self.client()
    }
}
impl PgClient for deadpool_postgres::Transaction<'_> {
    fn pg(&self) -> &tokio_postgres::Client {
        self.client()
    }
}
impl PgClient for deadpool_postgres::Client {
    fn pg(&self) -> &tokio_postgres::Client {
        self
    }
}

// The runner is an implementation detail: `Sealed` is unnameable outside the
// crate, so the crate-private `Exec` in its signature never leaks.
#[allow(private_interfaces)]
mod sealed {
    /// Hides the statement runner from the public API.
    pub trait Sealed {
        fn as_exec(&self) -> &dyn crate::db::Exec;
        /// The connection underneath, for COPY (inside the same transaction).
        fn pg_client(&self) -> &tokio_postgres::Client;
    }
}

macro_rules! executor {
    ($($ty:ty),*) => {$(
        #[allow(private_interfaces)]
        impl sealed::Sealed for $ty {
            fn as_exec(&self) -> &dyn Exec { self }
            fn pg_client(&self) -> &tokio_postgres::Client { PgClient::pg(self) }
        }
        impl Executor for $ty {}
    )*};
}

executor!(
    tokio_postgres::Client,
    tokio_postgres::Transaction<'_>,
    deadpool_postgres::Transaction<'_>,
    deadpool_postgres::Client
);
