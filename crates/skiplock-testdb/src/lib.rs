//! Throwaway PostgreSQL servers for skiplock's tests, demo and benchmarks.
//!
//! The server programs come from the machine's PostgreSQL installation (`apt-get install
//! postgresql` on Debian and Ubuntu); no server needs to be running or configured.
//!
//! - [`fresh_database`] and [`TestDatabase`]: a database of its own for each test, cloned
//!   from a template built once, on a cluster shared by all test processes, or on the server
//!   named by `SKIPLOCK_TEST_DATABASE_URL` or `DATABASE_URL`.
//! - [`Cluster`] and [`ClusterOptions`]: a private server to stop, crash and restart (fault
//!   tests), or to tune (benchmarks, the demo).
//! - [`ClusterTls`]: a cluster with `ssl = on`, a CA and certificates made for it, and TLS-only
//!   TCP (`hostssl`); `SKIPLOCK_TEST_TLS=1` ([`TEST_TLS_ENV`]) makes the shared cluster one, so
//!   any test runs over TLS.
//! - [`Cluster::start_standby`], [`Cluster::promote`]: a streaming standby to fail over to.
//! - [`PgBouncer`]: a pgbouncer in transaction pooling mode in front of a test server.
//! - [`find_bin_dir`]: where the server programs are (`PG_BIN` overrides).
//! - [`Error`]: everything that can go wrong, with the server's log when it would not start.
//!
//! Clusters live under `/tmp/skiplock-testdb-<uid>/`. Nothing outlives its users: a
//! [`Cluster`] is deleted on drop, the shared cluster about ten seconds after the last
//! process using it exits, and a detached watchdog (or, failing that, the next start)
//! removes the clusters of processes killed before they could clean up. When run as root,
//! the server runs as the `postgres` system user, as PostgreSQL refuses root. Linux only:
//! liveness is read from `/proc`, and the watchdog needs `sh`, `flock`, `setsid` and, as
//! root, `runuser`.
//!
//! # Example: a test with its own database
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // The template is built once, by whichever test gets there first; every test then gets
//! // a clone of it. Change the key when the schema changes.
//! let db = skiplock_testdb::fresh_database("greetings-v1", |url| async move {
//!     let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
//!     tokio::spawn(connection);
//!     client.batch_execute("CREATE TABLE greeting (text text NOT NULL)").await?;
//!     Ok(())
//! })
//! .await?;
//!
//! let client = db.connect().await?;
//! client.execute("INSERT INTO greeting VALUES ('hello, world')", &[]).await?;
//! # Ok(())
//! # }
//! ```

mod bin_dir;
mod cluster;
mod database;
mod error;
mod pgbouncer;
mod process;
mod registry;
mod tls;

pub use bin_dir::find_bin_dir;
pub use cluster::{
    Cluster, ClusterOptions, MAX_CONNECTIONS_DEFAULT, SHARED_BUFFERS_DEFAULT, TEST_TLS_ENV, url_or_private,
};
pub use database::{TestDatabase, fresh_database};
pub use error::{Error, InitError};
pub use pgbouncer::PgBouncer;
pub use tls::{ClusterTls, SERVER_NAMES_DEFAULT, write_unrelated_ca};
