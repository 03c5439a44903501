//! The rescuer: jobs whose worker stopped heartbeating (crashed, cut off)
//! go back to available, or are discarded when out of attempts. Runs on the
//! leader only, each batch in a leader-guarded transaction.

use std::sync::Arc;
use std::time::Duration;

use super::leader::Leadership;
use crate::client::RescueReport;
use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::job::JobState;
use crate::service::Service;

/// How often the rescuer looks for expired leases: 5 seconds.
pub const RESCUE_INTERVAL_DEFAULT: Duration = Duration::from_secs(5);
/// Jobs taken back per statement: 1,000.
pub(crate) const RESCUE_BATCH: i64 = 1000;

/// The rescuer's settings.
#[derive(Debug, Clone)]
pub(crate) struct RescuerConfig {
    /// Time between passes. Default [`RESCUE_INTERVAL_DEFAULT`]; at least
    /// 10 ms.
    pub interval: Duration,
}

impl Default for RescuerConfig {
    fn default() -> Self {
        RescuerConfig { interval: RESCUE_INTERVAL_DEFAULT }
    }
}

/// The rescuer service.
pub(crate) struct Rescuer {
    cfg: RescuerConfig,
    db: Db,
    leadership: Arc<Leadership>,
}

impl Rescuer {
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an interval under 10 ms.
    pub fn new(cfg: RescuerConfig, db: Db, leadership: Arc<Leadership>) -> Result<Rescuer> {
        if cfg.interval < Duration::from_millis(10) {
            return Err(Error::invalid("rescue_interval", "must be at least 10ms"));
        }
        Ok(Rescuer { cfg, db, leadership })
    }
}

/// One batch, in the leader's transaction `on`.
pub(crate) async fn batch(on: db::On<'_>) -> Result<RescueReport> {
    let rescued = db::job::rescue(on, RESCUE_BATCH).await?;
    for (id, state) in &rescued {
        tracing::info!(id, state = %state, "rescued a job whose lease expired");
        let label = if *state == JobState::Available { "retried" } else { state.as_str() };
        metrics::counter!(crate::metrics::JOBS_RESCUED, "outcome" => label).increment(1);
    }
    Ok(RescueReport { rescued })
}

impl Service for Rescuer {
    const NAME: &'static str = "rescuer";
    type Report = RescueReport;

    /// Rescue batches until fewer than a batch were found.
    async fn run_once(&self) -> Result<Option<RescueReport>> {
        let mut all = RescueReport::default();
        loop {
            let Some((r, _, _)) = super::guard::guarded!(&self.leadership, &self.db, |on| batch(on).await?)? else {
                return Ok(None);
            };
            let n = r.rescued.len();
            all.rescued.extend(r.rescued);
            if n < RESCUE_BATCH as usize {
                return Ok(Some(all));
            }
        }
    }

    fn next_pass(&self, _last: &Result<Option<RescueReport>>) -> Duration {
        self.cfg.interval
    }
}
