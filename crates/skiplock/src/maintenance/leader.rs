//! Leader election through a leader row with an expiring lease (no session
//! state, so it works behind PgBouncer in transaction mode).
//!
//! The elector tries every third of the lease: the holder renews, others
//! take the row once its lease expired (`db/leader/elect.sql`). Locally, the
//! lease becomes a deadline measured from when the request was sent, so
//! this process stops believing it leads no later than the database stops
//! saying so. Every maintenance pass then re-checks in the database (the
//! `guarded!` macro in `mod.rs`), which is what makes two leaders' passes
//! never overlap.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use super::Inner;
use crate::db;
use crate::error::Result;
use crate::runtime::{Event, Shared, sleep_or};

/// Why leadership ended at a resignation (shutdown).
const RESIGNED: &str = "resigned";

/// How long an elected leader holds its lease without renewing it: 10
/// seconds. It renews every third of it; a dead leader is replaced within
/// about a third of a lease after its lease ran out.
pub const LEADER_LEASE_DEFAULT: Duration = Duration::from_secs(10);
/// The shortest leader lease accepted: 300 milliseconds.
pub const LEADER_LEASE_MIN: Duration = Duration::from_millis(300);
/// The longest leader lease accepted: 1 hour. The election's `SECURITY
/// DEFINER` function refuses longer ones, so a role allowed to run it cannot
/// hold the leader row for longer without renewing it.
pub const LEADER_LEASE_MAX: Duration = Duration::from_secs(3600);

/// This process's view of its leadership.
pub(crate) struct State {
    /// True while this process believes it leads; watched by the services,
    /// which run at once when it turns true.
    flag: watch::Sender<bool>,
    /// When the lease runs out by this process's clock.
    deadline: Mutex<Option<Instant>>,
}

impl State {
    pub fn new() -> Self {
        State { flag: watch::Sender::new(false), deadline: Mutex::new(None) }
    }

    /// True while elected and the lease, by the local clock, still holds.
    pub fn is_leader(&self) -> bool {
        *self.flag.borrow() && self.deadline.lock().expect("not poisoned").is_some_and(|d| Instant::now() < d)
    }

    /// A receiver that sees leadership changes.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.flag.subscribe()
    }
}

/// Who leads the fleet now, as [`Client::leader`](crate::Client::leader)
/// reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaderInfo {
    /// The leader's worker id.
    pub id: String,
    /// When it was elected (database clock).
    pub elected_at: DateTime<Utc>,
    /// When its lease runs out unless renewed (database clock).
    pub expires_at: DateTime<Utc>,
}

impl Inner {
    fn set_leader(&self, deadline: Instant) {
        *self.leader.deadline.lock().expect("not poisoned") = Some(deadline);
        // send_if_modified: a renewal must not wake the services' loops
        // (watch receivers are woken by every send).
        let won = self.leader.flag.send_if_modified(|leading| !std::mem::replace(leading, true));
        if won {
            tracing::info!(id = %self.id, "elected leader: running the maintenance services");
            self.emit(Event::LeaderElected);
        }
    }

    /// Drops leadership (locally) and says why.
    pub(crate) fn lost(&self, why: &str) {
        *self.leader.deadline.lock().expect("not poisoned") = None;
        let was = self.leader.flag.send_if_modified(|leading| std::mem::replace(leading, false));
        if was {
            // Resigning at shutdown is routine; losing the lease is not.
            if why == RESIGNED {
                tracing::info!(id = %self.id, why, "no longer the leader");
            } else {
                tracing::warn!(id = %self.id, why, "no longer the leader");
            }
            self.emit(Event::LeaderLost);
        }
    }

    /// One election round: renews the lease if held, takes the row if its
    /// lease expired. Returns whether this process leads now.
    pub(crate) async fn elect(&self) -> Result<bool> {
        let sent = Instant::now();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        // An attempt that hangs must not outlive the lease it would renew.
        let attempt = async {
            let db = self.client.db().await?;
            db::leader::elect(&db, self.client.stmts(), &self.id, lease_ms, &self.limits.elect_lock)
                .await
                .map_err(|e| self.client.pg(e))
        };
        let outcome = match tokio::time::timeout(self.lease / 2, attempt).await {
            Ok(r) => r,
            Err(_) => Err(crate::Error::Timeout { after: self.lease / 2 }),
        };
        match outcome {
            Ok(Some(held)) => {
                let left = (held.expires_at - held.db_now).to_std().unwrap_or(Duration::ZERO);
                self.set_leader(sent + left);
                Ok(true)
            }
            Ok(None) => {
                self.lost("another process holds the leader row");
                Ok(false)
            }
            Err(e) => {
                if !self.leader.is_leader() {
                    self.lost("the lease ran out while it could not be renewed");
                }
                Err(e)
            }
        }
    }

    /// Gives up leadership: deletes the leader row if held.
    pub(crate) async fn resign(&self) -> Result<bool> {
        let db = self.client.db().await?;
        let held = db::leader::resign(&db, self.client.stmts(), &self.id).await.map_err(|e| self.client.pg(e))?;
        self.lost(RESIGNED);
        Ok(held)
    }
}

/// The elector's loop: an election round every third of the lease; at
/// shutdown, resign so another process takes over at once.
pub(crate) async fn run(sh: Arc<Shared>, m: Arc<Inner>) {
    let every = m.lease / 3;
    loop {
        // Only a process that holds its worker id stands: two processes
        // with one id would share the leadership (runtime/registry.rs).
        if !sh.registry.is_registered() {
            if m.leader.is_leader() {
                m.lost("this worker's id is no longer registered to it");
            }
            if !sh.registry.wait(&sh.services_stop).await {
                break;
            }
        }
        if let Err(e) = m.elect().await {
            tracing::warn!(error = %e, "leader election round failed");
        }
        if !sleep_or(&sh.services_stop, every).await {
            break;
        }
    }
    if let Err(e) = m.resign().await {
        tracing::warn!(error = %e, "could not resign leadership; it passes on when the lease expires");
    }
}
