//! How a statement reaches the server: [`StatementMode`], the [`Exec`]
//! trait over a pooled connection or a caller's transaction, and the pooled
//! connection that is taken out of the pool when it may be stalled.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use postgres_types::{ToSql, Type};
use tokio_postgres::Row;

use super::statements::Stmt;

/// How statements reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatementMode {
    /// Prepare each statement once per connection and reuse it: the fastest
    /// on a direct connection (default).
    #[default]
    Prepared,
    /// Send each statement unnamed, with its parameter types, in one round
    /// trip; nothing is left on the connection. Required behind PgBouncer in
    /// transaction pooling mode (which cannot keep prepared statements).
    Unnamed,
}

/// A statement failed, or did not answer in time.
#[derive(Debug)]
pub(crate) enum DbError {
    /// The driver's error.
    Pg(tokio_postgres::Error),
    /// No answer within the client's statement timeout; the connection was
    /// dropped, since it may be stalled mid-transaction.
    Timeout(Duration),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::Pg(e)
    }
}

/// The boxed future of [`Exec::run`]: boxed because it is stored behind a
/// trait object of several connection types.
pub(crate) type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, DbError>> + Send + 'a>>;

/// Something that can run a [`Stmt`]: a pooled connection or a caller's
/// transaction.
pub(crate) trait Exec: Sync {
    fn run<'a>(&'a self, stmt: &'a Stmt, params: &'a [&'a (dyn ToSql + Sync)]) -> RunFuture<'a>;
}

/// A pooled connection, how to use it, and how long to wait for it.
///
/// A connection whose statement timed out or failed at the transport level
/// is taken out of the pool when this is dropped, never handed out again: it
/// may be stalled mid-transaction behind a dead network path.
pub(crate) struct Pooled {
    conn: Option<deadpool_postgres::Client>,
    mode: StatementMode,
    timeout: Option<Duration>,
    broken: AtomicBool,
}

impl Pooled {
    pub fn new(conn: deadpool_postgres::Client, mode: StatementMode, timeout: Option<Duration>) -> Self {
        Pooled { conn: Some(conn), mode, timeout, broken: AtomicBool::new(false) }
    }

    /// The connection itself, for statements outside the catalogue (COPY).
    pub fn client(&self) -> &deadpool_postgres::Client {
        self.conn.as_ref().expect("present until drop")
    }

    async fn query(&self, stmt: &Stmt, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, tokio_postgres::Error> {
        let client = self.client();
        match self.mode {
            StatementMode::Prepared => {
                let prepared = client.prepare_typed_cached(&stmt.sql, stmt.types).await?;
                client.query(&prepared, params).await
            }
            StatementMode::Unnamed => client.query_typed(&stmt.sql, &typed(stmt, params)).await,
        }
    }
}

impl Exec for Pooled {
    fn run<'a>(&'a self, stmt: &'a Stmt, params: &'a [&'a (dyn ToSql + Sync)]) -> RunFuture<'a> {
        Box::pin(async move {
            // Broken until the answer is read: a caller that drops this
            // future mid-flight (its own timeout, a select) leaves a request
            // on the wire, and the connection must not serve anyone else.
            let was_broken = self.broken.swap(true, Ordering::Relaxed);
            let result = match self.timeout {
                Some(limit) => match tokio::time::timeout(limit, self.query(stmt, params)).await {
                    Ok(r) => r,
                    Err(_) => {
                        self.broken.store(true, Ordering::Relaxed);
                        return Err(DbError::Timeout(limit));
                    }
                },
                None => self.query(stmt, params).await,
            };
            // No SQLSTATE means the transport failed, not the statement.
            let transport_failed = matches!(&result, Err(e) if e.code().is_none());
            self.broken.store(was_broken || transport_failed, Ordering::Relaxed);
            result.map_err(DbError::Pg)
        })
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if self.broken.load(Ordering::Relaxed)
            && let Some(conn) = self.conn.take()
        {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

/// A pooled connection for a transaction its caller may abandon midway (a
/// timeout around the whole transaction): taken out of the pool when
/// dropped, unless [`Discardable::keep`] said it is in a clean state. An
/// abandoned connection may still have a statement on the wire, or sit
/// behind a dead network path; it must not serve anyone else.
pub(crate) struct Discardable {
    conn: Option<deadpool_postgres::Client>,
    keep: bool,
}

impl Discardable {
    pub fn new(conn: deadpool_postgres::Client) -> Self {
        Discardable { conn: Some(conn), keep: false }
    }

    /// The transaction ended (committed, or failed with an answer from the
    /// server): the connection may go back to the pool.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl std::ops::Deref for Discardable {
    type Target = deadpool_postgres::Client;
    fn deref(&self) -> &Self::Target {
        self.conn.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Discardable {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.conn.as_mut().expect("present until drop")
    }
}

impl Drop for Discardable {
    fn drop(&mut self) {
        if !self.keep
            && let Some(conn) = self.conn.take()
        {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

/// Pairs each parameter with its declared type, for unnamed statements.
fn typed<'a>(stmt: &Stmt, params: &'a [&'a (dyn ToSql + Sync)]) -> Vec<(&'a (dyn ToSql + Sync), Type)> {
    debug_assert_eq!(params.len(), stmt.types.len(), "{}: parameter count", stmt.name);
    params.iter().copied().zip(stmt.types.iter().cloned()).collect()
}

macro_rules! exec_unnamed {
    ($($ty:ty),*) => {$(
        impl Exec for $ty {
            fn run<'a>(&'a self, stmt: &'a Stmt, params: &'a [&'a (dyn ToSql + Sync)]) -> RunFuture<'a> {
                Box::pin(async move { Ok(self.query_typed(&stmt.sql, &typed(stmt, params)).await?) })
            }
        }
    )*};
}

exec_unnamed!(tokio_postgres::Client, tokio_postgres::Transaction<'_>, deadpool_postgres::Transaction<'_>);

impl Exec for deadpool_postgres::Client {
    fn run<'a>(&'a self, stmt: &'a Stmt, params: &'a [&'a (dyn ToSql + Sync)]) -> RunFuture<'a> {
        Box::pin(async move { Ok(self.query_typed(&stmt.sql, &typed(stmt, params)).await?) })
    }
}
