//! The one error type of the library, classified by SQLSTATE rather than by message text.

use std::fmt;

/// Everything that can go wrong in skiplock.
///
/// Bad input is caught before anything is written and names the field
/// ([`Error::InvalidInput`]); database failures keep the driver's error as
/// their source and say whether retrying can help ([`Error::is_transient`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input, caught before anything was written. `field` names what was
    /// wrong, for example `queue`, `args` or `jobs[3].max_attempts`.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field that was rejected.
        field: String,
        /// Why it was rejected, in lower case.
        reason: String,
    },
    /// A unique key is already taken by an unfinished job (SQLSTATE 23505),
    /// where the operation cannot simply return the existing job.
    #[error("duplicate unique key{}", key.as_deref().map(|k| format!(" {k:?}")).unwrap_or_default())]
    Duplicate {
        /// The key, when known.
        key: Option<String>,
    },
    /// The skiplock schema is missing or older than this library: run
    /// `skiplock migrate` or [`crate::migrate`] (SQLSTATE 42P01, 42883, 3F000).
    #[error("the skiplock schema {schema:?} is not migrated (run `skiplock migrate`): {}", describe(source))]
    NotMigrated {
        /// The schema that was used.
        schema: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The schema holds migrations newer than this library knows.
    #[error("schema {schema:?} is at version {found}, newer than this library's {known}")]
    SchemaTooNew {
        /// The schema that was used.
        schema: String,
        /// Highest version applied in the database.
        found: i32,
        /// Highest version this library knows.
        known: i32,
    },
    /// The connection pool could not hand out a connection in time, or could
    /// not open one.
    #[error("connection pool: {0}")]
    Pool(String),
    /// A database error that retrying may fix: connection lost, serialization
    /// failure, deadlock, server shutting down, too many connections.
    #[error("database unavailable: {}", describe(.0))]
    Transient(#[source] tokio_postgres::Error),
    /// Any other database error.
    #[error("database: {}", describe(.0))]
    Database(#[source] tokio_postgres::Error),
    /// The database did not answer within the statement timeout; the
    /// connection was dropped. Retrying may help.
    #[error("database did not answer within {}ms", after.as_millis())]
    Timeout {
        /// The timeout that ran out.
        after: std::time::Duration,
    },
    /// A database error raised through `sqlx` (feature `sqlx`): an enqueue
    /// inside a caller's sqlx transaction. [`Error::sqlstate`] and
    /// [`Error::is_transient`] read it as they read the tokio-postgres
    /// errors (a unique violation comes back as [`Error::Duplicate`]).
    #[cfg(feature = "sqlx")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
    #[error("database (sqlx): {0}")]
    Sqlx(#[source] sqlx::Error),
    /// The error of a statement that carried this job together with other
    /// calls' jobs ([`Client::enqueue`](crate::Client::enqueue) combines
    /// concurrent calls), when the connection failed rather than the server
    /// refusing it: every job of that statement gets this same error. As
    /// with a lone call, the job may or may not have been committed.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
    /// A job's arguments could not be encoded or decoded.
    #[error("job args for kind {kind:?}: {source}")]
    Json {
        /// The job kind.
        kind: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// The signal handlers of [`Worker::run_until_signal`](crate::Worker::run_until_signal)
    /// could not be installed.
    #[error("cannot install the signal handlers: {0}")]
    Signal(#[source] std::io::Error),
    /// A connection could not be made as `sslmode` asks, and TLS is the
    /// cause: the server's certificate is not signed by a CA of
    /// `sslrootcert`, or is for another host (`verify-full`), or the server
    /// refused a connection without TLS, or offers none. `reason` names the
    /// cause and what to change. Counted as transient: nothing was sent, and
    /// a worker keeps trying (a fixed certificate, a failover) as it does
    /// for a server that is down.
    #[error("TLS: {reason}")]
    Tls {
        /// What went wrong, in lower case, with the option to change.
        reason: String,
        /// The driver's error, when there is one.
        #[source]
        source: Option<tokio_postgres::Error>,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bad input for `field`.
    pub(crate) fn invalid(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        Error::InvalidInput { field: field.into(), reason: reason.to_string() }
    }

    /// True when the same call may succeed later: the database was
    /// unreachable, restarting or overloaded, or a transaction lost a race.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transient(_) | Error::Pool(_) | Error::Timeout { .. } | Error::Tls { .. } => true,
            #[cfg(feature = "sqlx")]
            Error::Sqlx(e) => sqlx_transient(e),
            Error::Shared(e) => e.is_transient(),
            _ => false,
        }
    }

    /// The SQLSTATE code of a database error, if there is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Transient(e)
            | Error::Database(e)
            | Error::NotMigrated { source: e, .. }
            | Error::Tls { source: Some(e), .. } => e.code().map(|c| c.code()),
            #[cfg(feature = "sqlx")]
            Error::Sqlx(e) => sqlx_pg_error(e).map(|db| db.code()),
            Error::Shared(e) => e.sqlstate(),
            _ => None,
        }
    }

    /// Classifies a driver error by its SQLSTATE.
    pub(crate) fn from_pg(e: tokio_postgres::Error, schema: &str) -> Self {
        use tokio_postgres::error::SqlState;
        let Some(code) = e.code() else {
            // A certificate check that failed says why, naming the cause.
            if let Some(refusal) = crate::tls::refusal::cause(&e) {
                return Error::Tls { reason: refusal.to_string(), source: Some(e) };
            }
            // No SQLSTATE: the connection itself failed (closed, I/O, timeout).
            return if e.is_closed() || is_io(&e) { Error::Transient(e) } else { Error::Database(e) };
        };
        if *code == SqlState::UNIQUE_VIOLATION {
            let key = e.as_db_error().and_then(|d| d.detail()).map(str::to_owned);
            return Error::Duplicate { key };
        }
        if *code == SqlState::UNDEFINED_TABLE
            || *code == SqlState::UNDEFINED_FUNCTION
            || *code == SqlState::INVALID_SCHEMA_NAME
            || *code == SqlState::UNDEFINED_OBJECT
        {
            return Error::NotMigrated { schema: schema.to_owned(), source: e };
        }
        if transient_code(code.code()) {
            return Error::Transient(e);
        }
        Error::Database(e)
    }
}

/// Whether a SQLSTATE says retrying may help: 08 connection exception; 40
/// transaction rollback (serialization, deadlock); 53 insufficient
/// resources; 57P0x admin or crash shutdown, cannot connect now.
fn transient_code(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53")) || code.starts_with("57P")
}

/// The server's error under a sqlx error, if it is one.
#[cfg(feature = "sqlx")]
fn sqlx_pg_error(e: &sqlx::Error) -> Option<&sqlx::postgres::PgDatabaseError> {
    e.as_database_error().and_then(|db| db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
}

/// As [`Error::is_transient`] for a sqlx error: the connection or the pool
/// failed (nothing the statement said was wrong), or the server's SQLSTATE
/// is one of [`transient_code`]'s.
#[cfg(feature = "sqlx")]
fn sqlx_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(_) => sqlx_pg_error(e).is_some_and(|db| transient_code(db.code())),
        _ => false,
    }
}

/// A sqlx error as the library's: a unique violation is
/// [`Error::Duplicate`] (naming the key from the server's detail), anything
/// else [`Error::Sqlx`], classified by [`Error::sqlstate`] and
/// [`Error::is_transient`].
#[cfg(feature = "sqlx")]
#[cfg_attr(docsrs, doc(cfg(feature = "sqlx")))]
impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        if let Some(db) = sqlx_pg_error(&e)
            && db.code() == "23505"
        {
            return Error::Duplicate { key: db.detail().map(str::to_owned) };
        }
        Error::Sqlx(e)
    }
}

/// A driver error as one line: the server's code, message and detail (the
/// driver's own Display says only "db error"), or the transport's cause.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(refusal) = crate::tls::refusal::cause(e) {
        return format!("TLS: {refusal}");
    }
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            s.push_str(&format!(" ({detail})"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!(" (hint: {hint})"));
        }
        return s;
    }
    // A failure on our side of the wire: the driver's words and each cause
    // under them, once.
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(cause) = src {
        let t = cause.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = cause.source();
    }
    s
}

fn is_io(e: &tokio_postgres::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if s.is::<std::io::Error>() {
            return true;
        }
        src = s.source();
    }
    false
}

/// A driver error outside a statement of the catalogue (reading a column,
/// a transaction's commit): classified as `Error::from_pg` does, without
/// a schema to name.
impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::from_pg(e, "")
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => Error::from_pg(e, ""),
            other => Error::Pool(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_connection_rollback_resources_and_shutdown() {
        for code in ["08006", "40001", "40P01", "53300", "57P01", "57P03"] {
            assert!(transient_code(code), "{code}");
        }
        for code in ["22012", "23505", "42P01", "57014", "0"] {
            assert!(!transient_code(code), "{code}");
        }
    }

    #[cfg(feature = "sqlx")]
    #[test]
    fn sqlx_errors_of_the_connection_and_pool_are_transient() {
        let io = sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset"));
        assert!(Error::from(io).is_transient());
        assert!(Error::from(sqlx::Error::PoolTimedOut).is_transient());
        let decode = Error::from(sqlx::Error::ColumnNotFound("x".into()));
        assert!(!decode.is_transient());
        assert_eq!(decode.sqlstate(), None);
    }

    #[test]
    fn invalid_input_names_the_field() {
        let e = Error::invalid("queue", "must not be empty");
        assert_eq!(e.to_string(), "invalid queue: must not be empty");
        assert!(!e.is_transient());
    }
}
