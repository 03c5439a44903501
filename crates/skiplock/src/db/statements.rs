//! The catalogue: every statement the library runs, each from its `.sql`
//! file beside the Rust that runs it, with its parameter types, rendered
//! once per schema.

use std::sync::Arc;

use postgres_types::Type;

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
    leader_backend => "leader/backend.sql" [];
    health_hot_table => "health/hot_table.sql" [];
    health_xmin => "health/xmin.sql" [];
    health_notify => "health/notify.sql" [];
    health_stuck => "health/stuck.sql" [INT8];
    health_partitions => "health/partitions.sql" [];
    health_discards => "health/discards.sql" [];
    health_unserved => "health/unserved.sql" [INT8];
    leader_evict => "leader/evict.sql" [INT4];
    periodic_list => "periodic/list.sql" [TEXT_ARRAY];
    periodic_reset => "periodic/reset.sql" [TEXT, TEXT, TIMESTAMPTZ];
    periodic_advance => "periodic/advance.sql" [TEXT, TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMPTZ];
    archive_ensure => "archive/ensure.sql" [TIMESTAMPTZ, INT4];
    archive_expire => "archive/expire.sql" [TIMESTAMPTZ, INT8, INT8, INT8];
    archive_prune_default => "archive/prune_default.sql" [TIMESTAMPTZ, INT8, INT8, INT8, INT8];
    archive_lock_timeout => "archive/lock_timeout.sql" [TEXT];
    unique_prune => "unique/prune.sql" [TEXT, INT8];
    marks_advance => "marks/advance.sql" [TEXT_ARRAY, BOOL, INT4_ARRAY];
    marks_prune => "marks/prune.sql" [];
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
