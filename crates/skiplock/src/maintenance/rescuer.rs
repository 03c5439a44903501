//! The rescuer: jobs whose worker stopped heartbeating (crashed, cut off)
//! go back to available, or are discarded when out of attempts. Runs on the
//! leader only, each batch in a leader-guarded transaction.

use std::sync::Arc;

use super::Inner;
use crate::client::RescueReport;
use crate::db::{self, Exec};
use crate::job::JobState;
use crate::runtime::{Shared, sleep_or};

/// Jobs taken back per statement.
pub(crate) const RESCUE_BATCH: i64 = 1000;

pub(crate) async fn run(sh: Arc<Shared>, m: Arc<Inner>) {
    loop {
        if !sleep_or(&sh.services_stop, sh.cfg.rescue_interval).await {
            return;
        }
        if let Err(e) = m.rescue_pass().await {
            tracing::warn!(error = %e, "rescue pass failed");
        }
    }
}

/// One batch inside the leader's transaction.
pub(crate) async fn pass(m: &Inner, tx: &dyn Exec) -> crate::Result<RescueReport> {
    let rescued = db::job::rescue(tx, m.client.stmts(), RESCUE_BATCH).await.map_err(|e| m.client.pg(e))?;
    for (id, state) in &rescued {
        tracing::info!(id, state = %state, "rescued a job whose lease expired");
        let label = if *state == JobState::Available { "retried" } else { state.as_str() };
        metrics::counter!("skiplock_jobs_rescued_total", "outcome" => label).increment(1);
    }
    Ok(RescueReport { rescued })
}
