//! skiplock's integration tests: one binary, one file per area, one fresh
//! database per test on a private PostgreSQL (see `skiplock-testdb`).

mod cancel;
mod claim;
mod combine;
mod enqueue;
mod examples;
mod explain;
mod fence;
mod health;
mod insights;
mod leader;
mod lifecycle;
mod marks;
mod migrate;
mod model;
mod periodic;
mod pgbouncer;
mod races;
mod registry;
mod retention;
mod security;
mod shared_pool;
mod sql_api;
#[cfg(feature = "sqlx")]
mod sqlx_tx;
mod statements;
mod structure;
mod supervision;
mod support;
mod tls;
#[cfg(feature = "opentelemetry")]
mod trace;
mod unique;
mod vacuum;
mod wakeups;
mod worker;
