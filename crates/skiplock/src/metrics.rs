//! Every metric skiplock records, through the `metrics` facade (install any
//! recorder: the Prometheus exporter, for one). docs/OPERATIONS.md lists
//! each with its labels and unit; this file is the one place their names
//! are spelled.
//!
//! Label values are bounded: queues are the worker's own, and a job's kind
//! is named only when a handler is registered for it; any other kind (one
//! an enqueuer invented, run by a catch-all handler or by none) is counted
//! under [`KIND_OTHER`], so a careless enqueuer cannot create series without
//! end.

/// Jobs claimed, by `queue`.
pub(crate) const JOBS_CLAIMED: &str = "skiplock_jobs_claimed_total";
/// Jobs completed, by `queue`.
pub(crate) const JOBS_COMPLETED: &str = "skiplock_jobs_completed_total";
/// Failed attempts that will be retried, by `queue`.
pub(crate) const JOBS_RETRIED: &str = "skiplock_jobs_retried_total";
/// Jobs discarded (attempts used up, or by their handler), by `queue`.
pub(crate) const JOBS_DISCARDED: &str = "skiplock_jobs_discarded_total";
/// Jobs cancelled, by `queue`.
pub(crate) const JOBS_CANCELLED: &str = "skiplock_jobs_cancelled_total";
/// Jobs snoozed, by `queue`.
pub(crate) const JOBS_SNOOZED: &str = "skiplock_jobs_snoozed_total";
/// Outcomes refused because their lease no longer held, by `queue`.
pub(crate) const COMPLETIONS_STALE: &str = "skiplock_completions_stale_total";
/// Jobs running in this worker now, by `queue` (gauge).
pub(crate) const JOBS_RUNNING: &str = "skiplock_jobs_running";
/// Seconds from a job's `run_at` to its start, by `queue` (histogram).
pub(crate) const JOB_START_LATENCY: &str = "skiplock_job_start_latency_seconds";
/// Seconds a handler ran, by `kind` (histogram).
pub(crate) const JOB_RUN_SECONDS: &str = "skiplock_job_run_seconds";
/// Jobs of a kind with no handler reaching a worker.
pub(crate) const JOBS_UNKNOWN_KIND: &str = "skiplock_jobs_unknown_kind_total";
/// Jobs the rescuer took back, by `outcome` (retried, discarded, cancelled).
pub(crate) const JOBS_RESCUED: &str = "skiplock_jobs_rescued_total";
/// Vacuums of the hot table by the leader.
pub(crate) const HOT_TABLE_VACUUMS: &str = "skiplock_hot_table_vacuums_total";
/// Analyzes of the hot table by the leader.
pub(crate) const HOT_TABLE_ANALYZES: &str = "skiplock_hot_table_analyzes_total";
/// Panics of a background service (restarted), by `service`.
pub(crate) const SERVICE_PANICS: &str = "skiplock_service_panics_total";

/// Jobs by `queue` and `state`, as the leader last counted them (gauge;
/// [`DepthGauges`](crate::DepthGauges)).
pub(crate) const QUEUE_JOBS: &str = "skiplock_queue_jobs";
/// Age of each `queue`'s oldest available job at the last count, seconds
/// (gauge).
pub(crate) const QUEUE_OLDEST_AVAILABLE: &str = "skiplock_queue_oldest_available_seconds";
/// How old the last depth count is, seconds (gauge).
pub(crate) const QUEUE_DEPTH_AGE: &str = "skiplock_queue_depth_age_seconds";

/// The `kind` label of jobs whose kind has no handler of its own.
pub(crate) const KIND_OTHER: &str = "other";

#[cfg(test)]
mod tests {
    #[test]
    fn operations_md_lists_every_metric() {
        let ops = include_str!("../../../docs/OPERATIONS.md");
        let catalogue = include_str!("metrics.rs").split("#[cfg(test)]").next().unwrap();
        let names: Vec<&str> = catalogue.split('"').filter(|s| s.starts_with("skiplock_")).collect();
        assert!(names.len() >= 14, "{names:?}");
        for name in names {
            assert!(ops.contains(&format!("`{name}`")), "docs/OPERATIONS.md does not list {name}");
        }
    }
}
