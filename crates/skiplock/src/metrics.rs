//! The metrics skiplock records, through the `metrics` facade (install any
//! recorder: the Prometheus exporter, for one). docs/OPERATIONS.md lists
//! each with its labels and unit.
//!
//! Label values are bounded: queues are the worker's own, and a job's kind
//! is named only when a handler is registered for it; any other kind (one
//! an enqueuer invented, run by a catch-all handler or by none) is counted
//! under [`KIND_OTHER`], so a careless enqueuer cannot create series without
//! end.

/// The `kind` label of jobs whose kind has no handler of its own.
pub(crate) const KIND_OTHER: &str = "other";
