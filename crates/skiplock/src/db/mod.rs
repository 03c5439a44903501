//! The only module that runs SQL. Each statement lives in a `.sql` file beside
//! the Rust that runs it (`job/claim.sql` next to `job.rs`), rendered once per
//! schema, and is run either as a cached prepared statement (direct
//! connections) or as an unnamed statement with explicit parameter types
//! (PgBouncer in transaction mode, and callers' own transactions).

pub(crate) mod archive;
pub(crate) mod copy;
pub(crate) mod insights;
pub(crate) mod job;
pub(crate) mod json;
pub(crate) mod leader;
pub(crate) mod periodic;
pub(crate) mod queue;
pub(crate) mod unique;
pub(crate) mod vacuum;
pub(crate) mod worker;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    job_insert => "job/insert.sql" [TEXT_ARRAY, TEXT_ARRAY, JSONB_ARRAY, INT2_ARRAY, TIMESTAMPTZ_ARRAY, INT8_ARRAY, INT4_ARRAY, TEXT_ARRAY, JSONB_ARRAY, JSONB_ARRAY, INT4_ARRAY, BOOL_ARRAY, INT8_ARRAY, TEXT_ARRAY, TEXT_ARRAY];
    job_insert_one => "job/insert_one.sql" [TEXT, TEXT, JSONB, INT2, TIMESTAMPTZ, INT8, INT4, TEXT_ARRAY, JSONB, INT4, BOOL];
    job_insert_plain => "job/insert_plain.sql" [TEXT_ARRAY, TEXT_ARRAY, JSONB_ARRAY, INT2_ARRAY, TIMESTAMPTZ_ARRAY, INT8_ARRAY, INT4_ARRAY, JSONB_ARRAY, JSONB_ARRAY, INT4_ARRAY, TEXT_ARRAY];
    job_holders => "job/holders.sql" [TEXT_ARRAY];
    job_copy_prepare => "job/copy_prepare.sql" [INT8];
    job_notify => "job/notify.sql" [TEXT_ARRAY];
    job_copy_in => "job/copy_in.sql" [];
    job_finish_claim => "job/finish_claim.sql" [INT8_ARRAY, INT8_ARRAY, TEXT_ARRAY, TEXT_ARRAY, INT8_ARRAY, TEXT, INT8, INT8, TEXT, BOOL];
    job_heartbeat => "job/heartbeat.sql" [INT8_ARRAY, INT8_ARRAY, INT8, JSONB_ARRAY, TEXT, INT8, INT4];
    job_release_unknown => "job/release_unknown.sql" [TEXT, INT8_ARRAY, INT8_ARRAY];
    job_rescue => "job/rescue.sql" [INT8];
    job_promote => "job/promote.sql" [INT8];
    job_cancel => "job/cancel.sql" [INT8_ARRAY];
    job_retry => "job/retry.sql" [INT8_ARRAY];
    job_get => "job/get.sql" [INT8];
    job_list => "job/list.sql" [TEXT, TEXT, TEXT, INT8, INT8];
    job_stats => "job/stats.sql" [];
    job_hot_ids => "job/hot_ids.sql" [INT8_ARRAY];
    vacuum_jobs_dead => "vacuum/jobs_dead.sql" [];
    vacuum_jobs_vacuum => "vacuum/jobs_vacuum.sql" [];
    vacuum_jobs_analyze => "vacuum/jobs_analyze.sql" [];
    queue_set_paused => "queue/set_paused.sql" [TEXT, BOOL];
    queue_list => "queue/list.sql" [];
    leader_elect => "leader/elect.sql" [TEXT, INT8, TEXT];
    leader_resign => "leader/resign.sql" [TEXT];
    leader_guard => "leader/guard.sql" [TEXT, TEXT, TEXT, TEXT];
    leader_clock => "leader/clock.sql" [];
    leader_get => "leader/get.sql" [];
    periodic_list => "periodic/list.sql" [TEXT_ARRAY];
    periodic_reset => "periodic/reset.sql" [TEXT, TEXT, TIMESTAMPTZ];
    periodic_advance => "periodic/advance.sql" [TEXT, TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ];
    archive_ensure => "archive/ensure.sql" [TIMESTAMPTZ, INT4];
    archive_expire => "archive/expire.sql" [TIMESTAMPTZ, INT8, INT8, INT8];
    archive_prune_default => "archive/prune_default.sql" [TIMESTAMPTZ, INT8, INT8, INT8, INT8];
    archive_lock_timeout => "archive/lock_timeout.sql" [TEXT];
    unique_prune => "unique/prune.sql" [TEXT, INT8];
    worker_register => "worker/register.sql" [TEXT, INT8, TEXT, INT4, JSONB, INT8];
    worker_holder => "worker/holder.sql" [TEXT];
    worker_deregister => "worker/deregister.sql" [TEXT, INT8];
    insights_jobs_search => "insights/jobs_search.sql" [TEXT_ARRAY, TEXT, TEXT, TEXT, INT8, JSONB, TEXT_ARRAY, INT8, INT8, INT8, INT4];
    insights_jobs_count => "insights/jobs_count.sql" [TEXT_ARRAY, TEXT, TEXT, TEXT, INT8, JSONB, TEXT_ARRAY, INT8, INT8];
    insights_jobs_max_id => "insights/jobs_max_id.sql" [];
    insights_jobs_discard => "insights/jobs_discard.sql" [INT8_ARRAY];
    insights_jobs_delete => "insights/jobs_delete.sql" [INT8_ARRAY];
    insights_workers => "insights/workers.sql" [];
    insights_depth => "insights/depth.sql" [];
    insights_queues => "insights/queues.sql" [];
    insights_stats_minutes => "insights/stats_minutes.sql" [TIMESTAMPTZ];
    insights_stats_hours => "insights/stats_hours.sql" [TIMESTAMPTZ];
    insights_periodic_list => "insights/periodic_list.sql" [];
    insights_periodic_set_paused => "insights/periodic_set_paused.sql" [TEXT, BOOL];
    insights_periodic_run_now => "insights/periodic_run_now.sql" [TEXT];
    insights_stats_write => "insights/stats_write.sql" [TEXT, TIMESTAMPTZ_ARRAY, TEXT_ARRAY, TEXT_ARRAY, TEXT_ARRAY, INT8_ARRAY, TEXT_ARRAY];
    insights_stats_rollup => "insights/stats_rollup.sql" [TIMESTAMPTZ, INT8];
    insights_stats_prune => "insights/stats_prune.sql" [TIMESTAMPTZ, TIMESTAMPTZ, INT8];
    insights_depth_count => "insights/depth_count.sql" [FLOAT8];
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
