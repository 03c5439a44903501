//! The rescuer: jobs whose worker stopped heartbeating (crashed, cut off)
//! go back to available, or are discarded when out of attempts.

use std::sync::Arc;

use crate::job::JobState;
use crate::runtime::{Shared, sleep_or};

/// Jobs taken back per statement.
pub(crate) const RESCUE_BATCH: i64 = 1000;

pub(crate) async fn run(sh: Arc<Shared>) {
    loop {
        if !sleep_or(&sh.services_stop, sh.cfg.rescue_interval).await {
            return;
        }
        if let Err(e) = run_once(&sh).await {
            tracing::warn!(error = %e, "rescue pass failed");
        }
    }
}

/// One pass: rescue until fewer than a batch remain.
pub(crate) async fn run_once(sh: &Shared) -> crate::Result<usize> {
    let mut total = 0;
    loop {
        let report = sh.client.rescue(RESCUE_BATCH).await?;
        let n = report.rescued.len();
        total += n;
        for (id, state) in &report.rescued {
            tracing::info!(id, state = %state, "rescued a job whose lease expired");
            let label = if *state == JobState::Available { "retried" } else { state.as_str() };
            metrics::counter!("skiplock_jobs_rescued_total", "outcome" => label).increment(1);
        }
        if n < RESCUE_BATCH as usize {
            return Ok(total);
        }
    }
}
