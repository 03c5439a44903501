//! [`Client`] itself: the struct over the database handle, and the calls
//! that are about the client rather than jobs (its schema, where it
//! connects, its pool, migrations). The other files of `client/` add their
//! calls to it.

use std::sync::Arc;
use std::time::Duration;

use super::wakeups;
use crate::db::{Db, Exec, StatementMode};
use crate::error::Result;
use crate::schema::{self, MigrateReport, Schema};

/// Default size of the client's connection pool.
pub const POOL_SIZE_DEFAULT: usize = 16;
/// Default wait for a pooled connection before [`Error::Pool`](crate::Error::Pool).
pub const POOL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default limit on one statement's round trip: 60 seconds.
pub const STATEMENT_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);

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
    pub(super) inner: Arc<Inner>,
}

/// What a client holds; its fields are the other `client/` files' to use.
pub(super) struct Inner {
    pub db: Db,
    pub args_max_bytes: usize,
    /// The NOTIFY rate limit's bookkeeping.
    pub wakeups: wakeups::Wakeups,
    /// Whether concurrent single enqueues share statements.
    pub combine: bool,
    /// The single enqueues waiting for a statement.
    pub coalescer: super::coalesce::Coalescer,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("schema", self.inner.db.schema())
            .field("mode", &self.inner.db.mode())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// The schema this client uses.
    pub fn schema(&self) -> &Schema {
        self.inner.db.schema()
    }

    /// How this client sends statements.
    pub fn statement_mode(&self) -> StatementMode {
        self.inner.db.mode()
    }

    /// The database handle under this client, for the worker runtime and
    /// the maintenance services.
    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }

    /// `text` without this client's database password or any URL's
    /// credentials, as skiplock stores error texts: for a program that
    /// prints what a job's command wrote (`skiplock work --exec`).
    ///
    /// # Example
    ///
    /// ```
    /// let client = skiplock::Client::connect("postgres://app:s3cret@db/app")?;
    /// assert_eq!(client.redact("login s3cret failed"), "login *** failed");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redact(&self, text: &str) -> String {
        self.inner.db.redact(text)
    }

    /// Where this client connects: `host:port/database` (each host, when
    /// several), never the user or password: for messages.
    ///
    /// # Example
    ///
    /// ```
    /// let client = skiplock::Client::connect("postgres://ada:s3cret@db.example:6543/app")?;
    /// assert_eq!(client.place(), "db.example:6543/app");
    /// let client = skiplock::Client::connect("host=/run/postgresql dbname=x")?;
    /// assert_eq!(client.place(), "/run/postgresql/.s.PGSQL.5432/x");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn place(&self) -> String {
        self.inner.db.place()
    }

    /// The pool's connections now: (open, idle). For benchmarks and
    /// diagnostics.
    pub fn pool_status(&self) -> (usize, usize) {
        self.inner.db.pool_status()
    }

    /// Opens connections until the pool holds `n` (at most its size), so the
    /// first requests after start-up do not pay for opening them.
    ///
    /// # Errors
    ///
    /// Connection errors.
    pub async fn warm_up(&self, n: usize) -> Result<()> {
        let n = n.min(self.inner.db.pool_max());
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(self.inner.db.raw().await?);
        }
        Ok(())
    }

    /// Applies pending migrations; see [`crate::migrate`].
    ///
    /// # Errors
    ///
    /// As [`crate::migrate`].
    pub async fn migrate(&self) -> Result<MigrateReport> {
        let mut conn = self.inner.db.raw().await?;
        let client: &mut tokio_postgres::Client = &mut conn;
        schema::migrate(client, self.schema()).await
    }

    /// Migrates up or down to `version` (0: removes everything); see
    /// [`crate::migrate_to`].
    ///
    /// # Errors
    ///
    /// As [`crate::migrate_to`].
    pub async fn migrate_to(&self, version: i32) -> Result<MigrateReport> {
        let mut conn = self.inner.db.raw().await?;
        let client: &mut tokio_postgres::Client = &mut conn;
        schema::migrate_to(client, self.schema(), version).await
    }

    /// The schema's migration version in the database (0: not migrated).
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn schema_version(&self) -> Result<i32> {
        let conn = self.inner.db.raw().await?;
        let client: &tokio_postgres::Client = &conn;
        schema::version(client, self.schema()).await
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
