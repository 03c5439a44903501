//! [`ClientBuilder`]: a client's settings, and the tuning of its
//! connections (JIT off, generic plans, keepalives, timeouts).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::facade::{Client, Inner, POOL_SIZE_DEFAULT, POOL_TIMEOUT_DEFAULT, STATEMENT_TIMEOUT_DEFAULT};
use super::wakeups::{self, NOTIFY_INTERVAL_DEFAULT};
use crate::db::{Db, DbConfig, StatementMode};
use crate::error::{Error, Result};
use crate::redact::redact_error;
use crate::schema::Schema;
use crate::validate;

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
            args_max_bytes: validate::ARGS_MAX_BYTES_DEFAULT,
            application_name: "skiplock".to_owned(),
        }
    }

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

    /// Builds the client. Connections open lazily, on first use.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for `database_url` when it cannot be parsed.
    pub fn build(self) -> Result<Client> {
        let mut cfg = tokio_postgres::Config::from_str(&self.url)
            .map_err(|e| Error::invalid("database_url", redact_error(&e.to_string(), &self.url)))?;
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
        cfg.connect_timeout(self.pool_timeout);
        let db = Db::new(DbConfig {
            pg: cfg,
            schema: self.schema,
            pool_size: self.pool_size,
            pool_timeout: self.pool_timeout,
            mode: self.statement_mode,
            statement_timeout: self.statement_timeout,
        })?;
        Ok(Client::new(db, self.args_max_bytes, self.notify_interval))
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

    fn new(db: Db, args_max_bytes: usize, notify_interval: Duration) -> Client {
        Client { inner: Arc::new(Inner { db, args_max_bytes, wakeups: wakeups::Wakeups::new(notify_interval) }) }
    }
}
