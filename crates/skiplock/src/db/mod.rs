//! The only module that runs SQL. Each statement lives in a `.sql` file beside
//! the Rust that runs it (`job/finish_claim.sql` next to `job.rs`), rendered once per
//! schema (`statements.rs`), and is run either as a cached prepared statement
//! (direct connections) or as an unnamed statement with explicit parameter
//! types (PgBouncer in transaction mode, and callers' own transactions;
//! `exec.rs`). Everything else reaches it through the handle ([`Db`],
//! `handle.rs`).

pub(crate) mod archive;
pub(crate) mod columns;
pub(crate) mod copy;
mod exec;
mod handle;
pub(crate) mod health;
pub(crate) mod insert;
pub(crate) mod insights;
pub(crate) mod job;
pub(crate) mod json;
pub(crate) mod leader;
pub(crate) mod marks;
pub(crate) mod periodic;
pub(crate) mod queue;
mod statements;
pub(crate) mod unique;
pub(crate) mod vacuum;
pub(crate) mod worker;

pub use exec::StatementMode;
pub(crate) use exec::{Discardable, Exec};
pub(crate) use handle::{Conn, Db, DbConfig, On};
pub(crate) use statements::Statements;
