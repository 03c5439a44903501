//! The only module that runs SQL. Each statement lives in a `.sql` file beside
//! the Rust that runs it (`job/claim.sql` next to `job.rs`), rendered once per
//! schema, and is run either as a cached prepared statement (direct
//! connections) or as an unnamed statement with explicit parameter types
//! (PgBouncer in transaction mode, and callers' own transactions).

pub(crate) mod job;
pub(crate) mod json;
pub(crate) mod queue;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use postgres_types::{ToSql, Type};
use tokio_postgres::Row;

use crate::schema::Schema;

/// One SQL statement with its parameter types.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    /// The file it came from, for test names and errors.
    pub name: &'static str,
    /// Rendered text (schema placeholders replaced).
    pub sql: Arc<str>,
    /// Parameter types, in order. Needed for unnamed statements, which have
    /// no Describe round trip to learn them.
    pub types: &'static [Type],
}

macro_rules! statements {
    ($($field:ident => $file:literal [$($ty:ident),* $(,)?];)*) => {
        /// Every statement the library runs, rendered for one schema.
        #[derive(Debug)]
        pub(crate) struct Statements { $(pub $field: Stmt,)* }

        impl Statements {
            pub fn new(schema: &Schema) -> Self {
                Statements { $($field: Stmt {
                    name: $file,
                    sql: schema.render(include_str!($file)).into(),
                    types: &[$(Type::$ty),*],
                },)* }
            }

            /// All of them, so one test can prepare every file.
            #[allow(dead_code)]
            pub fn all(&self) -> Vec<&Stmt> { vec![$(&self.$field),*] }
        }
    };
}

statements! {
    job_insert => "job/insert.sql" [TEXT_ARRAY, TEXT_ARRAY, JSONB_ARRAY, INT2_ARRAY, TIMESTAMPTZ_ARRAY, INT8_ARRAY, INT4_ARRAY, TEXT_ARRAY, JSONB_ARRAY, JSONB_ARRAY];
    job_claim => "job/claim.sql" [TEXT, INT8, INT8, TEXT];
    job_finish => "job/finish.sql" [INT8_ARRAY, INT8_ARRAY, TEXT_ARRAY, TEXT_ARRAY, INT8_ARRAY];
    job_heartbeat => "job/heartbeat.sql" [INT8_ARRAY, INT8_ARRAY, INT8];
    job_rescue => "job/rescue.sql" [INT8];
    job_promote => "job/promote.sql" [INT8];
    job_cancel => "job/cancel.sql" [INT8_ARRAY];
    job_retry => "job/retry.sql" [INT8_ARRAY];
    job_get => "job/get.sql" [INT8];
    job_list => "job/list.sql" [TEXT, TEXT, TEXT, INT8, INT8];
    job_stats => "job/stats.sql" [];
    job_hot_ids => "job/hot_ids.sql" [INT8_ARRAY];
    queue_set_paused => "queue/set_paused.sql" [TEXT, BOOL];
    queue_list => "queue/list.sql" [];
}

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

/// The boxed future of [`Exec::run`]: boxed because it is stored behind a
/// trait object of several connection types.
pub(crate) type RunFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send + 'a>>;

/// Something that can run a [`Stmt`]: a pooled connection or a caller's
/// transaction.
pub(crate) trait Exec: Sync {
    fn run<'a>(&'a self, stmt: &'a Stmt, params: &'a [&'a (dyn ToSql + Sync)]) -> RunFuture<'a>;
}

/// A pooled connection and how to use it.
pub(crate) struct Pooled<'c> {
    pub client: &'c deadpool_postgres::Client,
    pub mode: StatementMode,
}

impl Exec for Pooled<'_> {
    fn run<'a>(&'a self, stmt: &'a Stmt, params: &'a [&'a (dyn ToSql + Sync)]) -> RunFuture<'a> {
        Box::pin(async move {
            match self.mode {
                StatementMode::Prepared => {
                    let prepared = self.client.prepare_typed_cached(&stmt.sql, stmt.types).await?;
                    self.client.query(&prepared, params).await
                }
                StatementMode::Unnamed => self.client.query_typed(&stmt.sql, &typed(stmt, params)).await,
            }
        })
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
                Box::pin(async move { self.query_typed(&stmt.sql, &typed(stmt, params)).await })
            }
        }
    )*};
}

exec_unnamed!(tokio_postgres::Client, tokio_postgres::Transaction<'_>, deadpool_postgres::Transaction<'_>);

impl Exec for deadpool_postgres::Client {
    fn run<'a>(&'a self, stmt: &'a Stmt, params: &'a [&'a (dyn ToSql + Sync)]) -> RunFuture<'a> {
        Box::pin(async move { self.query_typed(&stmt.sql, &typed(stmt, params)).await })
    }
}
