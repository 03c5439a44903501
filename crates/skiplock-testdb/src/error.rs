//! The one error type of this crate.

use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding, starting or using a test server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No directory holding both `initdb` and `pg_ctl` was found.
    #[error(
        "no postgresql server binaries (initdb and pg_ctl) found; searched {searched}. \
         install them with `apt-get install postgresql` (debian/ubuntu), or set PG_BIN to the \
         directory holding them, or set SKIPLOCK_TEST_DATABASE_URL or DATABASE_URL to use a \
         running server instead"
    )]
    BinariesNotFound {
        /// Every place looked at, in order, with what was found wrong there.
        searched: String,
    },

    /// No `pgbouncer` program in `/usr/sbin` or `/usr/bin`.
    #[error("pgbouncer is not installed: `apt-get install pgbouncer` (debian/ubuntu)")]
    PgBouncerNotFound,

    /// We run as root, which the server refuses, and there is no `postgres` user to run it as.
    #[error(
        "running as root, but there is no `postgres` system user to run the server as; \
         `apt-get install postgresql` creates one, or run as an unprivileged user"
    )]
    NoServerUser,

    /// A [`ClusterOptions`](crate::ClusterOptions) setting cannot go into `postgresql.conf`.
    #[error("invalid server setting {name:?}: {reason}")]
    InvalidSetting {
        /// The setting's name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A file-system operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What we tried to do, e.g. "create directory".
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },

    /// A server program (`initdb`, `pg_ctl`) could not be run or exited with an error.
    #[error("{program} failed ({status}){}", if output.is_empty() { String::new() } else { format!(":\n{output}") })]
    Command {
        /// The program's path, and its subcommand if it has one.
        program: String,
        /// How it ended: an exit status, or why it could not be spawned.
        status: String,
        /// The tail of what it printed.
        output: String,
    },

    /// The server did not come up; the tail of its log says why.
    #[error(
        "postgresql server in {} did not start on port {port}: {reason}\n\
         --- server log (tail) ---\n{log_tail}",
        data_dir.display()
    )]
    ServerStart {
        /// The cluster's data directory.
        data_dir: PathBuf,
        /// The port it was asked to listen on.
        port: u16,
        /// What `pg_ctl start` said.
        reason: String,
        /// The last lines the server wrote to its log during this attempt.
        log_tail: String,
    },

    /// Connecting to the server or running a statement failed.
    #[error("{action}: {}", describe(source))]
    Postgres {
        /// What we were doing, e.g. "create database t_1a2b".
        action: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },

    /// The caller's `init` function failed while building a template database.
    #[error("initialising template database {template} failed: {source}")]
    TemplateInit {
        /// The template's database name.
        template: String,
        /// The error `init` returned.
        source: InitError,
    },
}

/// What a template's `init` function may fail with; see [`fresh_database`](crate::fresh_database).
pub type InitError = Box<dyn std::error::Error + Send + Sync>;

impl Error {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| Error::Io { action, path, source }
    }

    pub(crate) fn pg(action: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Self {
        let action = action.into();
        move |source| Error::Postgres { action, source }
    }
}

/// `tokio_postgres::Error`'s own `Display` is just "db error"; spell out the server's message
/// and SQLSTATE, or the cause chain, so a failed test says what happened.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    }
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let _ = write!(out, ": {c}");
        cause = c.source();
    }
    out
}
