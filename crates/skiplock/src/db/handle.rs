//! [`Db`]: the crate's one corridor to the database. The public `Client`,
//! the worker runtime and every maintenance service hold one (it is cheap to
//! clone); nothing else opens connections or runs statements.
//!
//! It owns the pool, the statements rendered for its schema, how they are
//! sent ([`StatementMode`]), the statement timeout, and the classification
//! of failures: every `db::*` function takes an [`On`] (statements on one
//! connection or transaction) and returns the library's [`Result`], with a
//! failure already turned into the right [`Error`] variant by its SQLSTATE,
//! naming the schema.

use std::sync::Arc;
use std::time::Duration;

use postgres_types::ToSql;
use tokio_postgres::Row;

use super::exec::{DbError, Exec, Pooled, StatementMode};
use super::statements::{Statements, Stmt};
use crate::error::{Error, Result};
use crate::redact::Redactor;
use crate::schema::Schema;
use crate::tls::TlsConnector;

/// How a [`Db`] connects: what `ClientBuilder` settled.
pub(crate) struct DbConfig {
    /// The connection settings, tuned (keepalives, timeouts, options).
    pub pg: tokio_postgres::Config,
    /// Every connection's TLS: the pool's, a dedicated pool's, LISTEN's.
    pub tls: TlsConnector,
    pub schema: Schema,
    pub pool_size: usize,
    pub pool_timeout: Duration,
    pub mode: StatementMode,
    pub statement_timeout: Option<Duration>,
    /// A caller's pool to run on instead of one of the handle's own (whose
    /// connections then carry none of the handle's session options).
    pub pool: Option<deadpool_postgres::Pool>,
}

/// The handle; see the module doc.
#[derive(Clone)]
pub(crate) struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    pool: deadpool_postgres::Pool,
    pg: tokio_postgres::Config,
    tls: TlsConnector,
    pool_timeout: Duration,
    schema: Schema,
    stmts: Statements,
    mode: StatementMode,
    statement_timeout: Option<Duration>,
    /// Masks the password in error texts this handle stores.
    redactor: Redactor,
    /// The type of the `job_state` enum (its OID differs per database), for
    /// binary COPY.
    state_type: tokio::sync::OnceCell<postgres_types::Type>,
}

impl Db {
    /// A handle with a pool of `cfg.pool_size` connections, opened lazily.
    pub fn new(cfg: DbConfig) -> Result<Db> {
        let pool = match cfg.pool {
            Some(theirs) => theirs,
            None => pool(&cfg.pg, &cfg.tls, cfg.pool_size, cfg.pool_timeout)?,
        };
        let password = cfg.pg.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        Ok(Db {
            inner: Arc::new(Inner {
                pool,
                redactor: Redactor::new(password),
                stmts: Statements::new(&cfg.schema),
                pg: cfg.pg,
                tls: cfg.tls,
                pool_timeout: cfg.pool_timeout,
                schema: cfg.schema,
                mode: cfg.mode,
                statement_timeout: cfg.statement_timeout,
                state_type: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The same database on a pool of its own of `size` connections: for
    /// the worker's heartbeat, which must never wait behind producers and
    /// maintenance for a connection.
    pub fn dedicated(&self, size: usize) -> Result<Db> {
        let i = &self.inner;
        Db::new(DbConfig {
            pg: i.pg.clone(),
            tls: i.tls.clone(),
            schema: i.schema.clone(),
            pool_size: size,
            pool_timeout: i.pool_timeout,
            mode: i.mode,
            statement_timeout: i.statement_timeout,
            pool: None,
        })
    }

    pub fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    #[cfg_attr(not(feature = "sqlx"), allow(dead_code))]
    pub fn stmts(&self) -> &Statements {
        &self.inner.stmts
    }

    pub fn mode(&self) -> StatementMode {
        self.inner.mode
    }

    /// The connection settings, for a connection of its own (LISTEN).
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.inner.pg
    }

    /// The TLS connector to open such a connection with.
    pub fn tls(&self) -> &TlsConnector {
        &self.inner.tls
    }

    /// Text as it may be stored: without this handle's password or any
    /// URL's credentials (a handler's error may quote a connection string).
    pub fn redact(&self, text: &str) -> String {
        self.inner.redactor.apply(text)
    }

    /// Where it connects: `host:port/dbname`, each host when several; no
    /// user, no password.
    pub fn place(&self) -> String {
        use tokio_postgres::config::Host;
        let cfg = &self.inner.pg;
        let ports = cfg.get_ports();
        let port = |i: usize| ports.get(i).or(ports.first()).copied().unwrap_or(5432);
        let hosts: Vec<String> = cfg
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Host::Tcp(name) => format!("{name}:{}", port(i)),
                #[cfg(unix)]
                Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(i)),
            })
            .collect();
        let hosts = if hosts.is_empty() { "(no host given)".to_owned() } else { hosts.join(",") };
        match cfg.get_dbname() {
            Some(db) => format!("{hosts}/{db}"),
            None => hosts,
        }
    }

    /// The most connections the pool opens.
    pub fn pool_max(&self) -> usize {
        self.inner.pool.status().max_size
    }

    /// The pool's size now and its connections idle.
    pub fn pool_status(&self) -> (usize, usize) {
        let s = self.inner.pool.status();
        (s.size, s.available)
    }

    /// A pooled connection that runs statements in this handle's mode and
    /// within its statement timeout.
    pub async fn conn(&self) -> Result<Conn> {
        let pooled = Pooled::new(self.raw().await?, self.inner.mode, self.inner.statement_timeout);
        Ok(Conn { pooled, db: self.clone() })
    }

    /// A pooled connection as deadpool hands it out, for a transaction of
    /// the library's own (wrap it in [`super::exec::Discardable`] if the caller
    /// may abandon it) or a COPY.
    pub async fn raw(&self) -> Result<deadpool_postgres::Client> {
        // A connection refused for TLS reasons says which.
        self.inner.pool.get().await.map_err(|e| self.inner.tls.explain(e.into()))
    }

    /// Statements on `exec`: a transaction of the library's, or a caller's.
    pub fn on<'a>(&'a self, exec: &'a dyn Exec) -> On<'a> {
        On { exec, s: &self.inner.stmts, schema: self.inner.schema.name() }
    }

    /// The `job_state` enum's type, looked up once (COPY needs its OID).
    pub async fn state_type(&self, pg: &tokio_postgres::Client) -> Result<postgres_types::Type> {
        let schema = self.schema().name();
        let t = self
            .inner
            .state_type
            .get_or_try_init(|| async {
                let sql = self.inner.schema.render("SELECT $1::{schema}.job_state");
                Ok::<_, tokio_postgres::Error>(pg.prepare(&sql).await?.params()[0].clone())
            })
            .await
            .map_err(|e| Error::from_pg(e, schema))?;
        Ok(t.clone())
    }
}

/// A pooled connection of a [`Db`]; see [`Pooled`] for what happens to it
/// when a statement times out or its transport fails.
pub(crate) struct Conn {
    pooled: Pooled,
    db: Db,
}

impl Conn {
    /// Statements on this connection.
    pub fn on(&self) -> On<'_> {
        self.db.on(&self.pooled)
    }

    /// The connection itself, for what is not a statement of the catalogue
    /// (COPY, VACUUM).
    pub fn client(&self) -> &deadpool_postgres::Client {
        self.pooled.client()
    }
}

/// Statements on one connection or transaction, with the schema to name in
/// errors: what every `db::*` function takes.
#[derive(Clone, Copy)]
pub(crate) struct On<'a> {
    exec: &'a dyn Exec,
    /// The statements, rendered for the schema.
    pub s: &'a Statements,
    schema: &'a str,
}

impl On<'_> {
    /// Runs `stmt`; a failure comes back classified.
    pub async fn run(&self, stmt: &Stmt, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>> {
        self.exec.run(stmt, params).await.map_err(|e| classify(e, self.schema))
    }

    /// The schema's name.
    pub fn schema(&self) -> &str {
        self.schema
    }
}

/// A statement's failure as the library's error.
pub(crate) fn classify(e: DbError, schema: &str) -> Error {
    match e {
        DbError::Pg(e) => Error::from_pg(e, schema),
        DbError::Timeout(after) => Error::Timeout { after },
    }
}

/// A pool of at most `size` connections made with `cfg`.
fn pool(
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
