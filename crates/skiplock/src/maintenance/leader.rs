//! Leader election through a leader row with an expiring lease (no session
//! state, so it works behind PgBouncer in transaction mode).
//!
//! [`Leadership`] is this process's part in it: who it is, whether it
//! believes it leads (a watch the leader-only services follow), and the time
//! limits derived from the lease. [`Elector`] is the service that keeps the
//! lease: a round every third of it, the holder renewing, others taking the
//! row once its lease expired (`db/leader/elect.sql`). Locally, the lease
//! becomes a deadline measured from when the request was sent, so this
//! process stops believing it leads no later than the database stops saying
//! so. Every maintenance pass then re-checks in the database (the
//! `guarded!` macro in `mod.rs`), which is what makes two leaders' passes
//! never overlap.

pub use crate::validate::LEADER_LEASE_MAX;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::db::{self, Db};
use crate::error::{Error, Result};
use crate::events::{Event, Events};
use crate::service::Service;
use crate::validate;

/// SQLSTATE of a lock wait ended by `lock_timeout`.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// Why leadership ended at a resignation (shutdown).
const RESIGNED: &str = "resigned";

/// How long an elected leader holds its lease without renewing it: 10
/// seconds. It renews every third of it; a dead leader is replaced within
/// about a third of a lease after its lease ran out.
pub const LEADER_LEASE_DEFAULT: Duration = Duration::from_secs(10);
/// The shortest leader lease accepted: 300 milliseconds.
pub const LEADER_LEASE_MIN: Duration = Duration::from_millis(300);

/// How long the maintenance's statements may take, derived from the leader
/// lease (`L`, 10 s by default): a pass's statements `L`, its lock waits
/// `L/4`, its idle moments `L/2` (a pass is idle only for a client round
/// trip; a vanished leader's session ends after that), the whole pass `3L`
/// on the client's side; an election's lock wait `L/4` (its client gives
/// up at `L/2`). A takeover therefore waits at most about `L` for a stuck
/// pass, except for the one kind the server's limits cannot end: a session
/// stopped halfway through reading a message from its client (a partition
/// or a frozen process mid-send), where PostgreSQL ignores the statement
/// timeout and has not armed the idle one. An election kept waiting for
/// longer than any pass may last (`3L` from its first lock timeout, which
/// itself comes after the holder's lease ran out) ends that session
/// (`db/leader/evict.sql`); its transaction rolls back.
pub(crate) struct Limits {
    pub pass: db::leader::PassLimits,
    pub client: Duration,
    pub elect_lock: String,
    /// How long an election waits on a held leader row before it ends the
    /// session holding it.
    pub evict_after: Duration,
}

impl Limits {
    fn of(lease: Duration) -> Limits {
        let ms = |d: Duration| format!("{}ms", d.as_millis().max(1));
        Limits {
            pass: db::leader::PassLimits {
                statement: ms(lease.max(Duration::from_secs(1))),
                lock: ms(lease / 4),
                idle: ms((lease / 2).max(Duration::from_secs(1))),
            },
            client: lease * 3,
            elect_lock: ms(lease / 4),
            evict_after: lease * 3,
        }
    }
}

/// This process's part in the election; shared by the elector and every
/// leader-only service.
pub(crate) struct Leadership {
    /// The name this process is elected under.
    pub id: String,
    /// How long a lease lasts unrenewed.
    pub lease: Duration,
    pub limits: Limits,
    pub events: Events,
    /// True while this process believes it leads; watched by the services,
    /// which run at once when it turns true.
    flag: watch::Sender<bool>,
    /// When the lease runs out by this process's clock.
    deadline: Mutex<Option<Instant>>,
    /// Since when this process's elections have found the leader row held
    /// by a pass (lock timeouts in a row).
    blocked_since: Mutex<Option<Instant>>,
}

impl Leadership {
    /// Leadership under `id` with `lease`, as yet not held.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a lease outside [`LEADER_LEASE_MIN`] to
    /// [`LEADER_LEASE_MAX`], or a bad id.
    pub fn new(id: String, lease: Duration, events: Events) -> Result<Leadership> {
        if lease < LEADER_LEASE_MIN {
            return Err(Error::invalid("leader_lease", format!("must be at least {LEADER_LEASE_MIN:?}")));
        }
        if lease > LEADER_LEASE_MAX {
            return Err(Error::invalid("leader_lease", format!("must be at most {LEADER_LEASE_MAX:?}")));
        }
        validate::text("id", &id, 255)?;
        Ok(Leadership {
            id,
            lease,
            limits: Limits::of(lease),
            events,
            flag: watch::Sender::new(false),
            deadline: Mutex::new(None),
            blocked_since: Mutex::new(None),
        })
    }

    /// True while elected and the lease, by the local clock, still holds.
    pub fn is_leader(&self) -> bool {
        *self.flag.borrow() && self.deadline.lock().expect("not poisoned").is_some_and(|d| Instant::now() < d)
    }

    /// A receiver that sees leadership changes.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.flag.subscribe()
    }

    fn set_leader(&self, deadline: Instant) {
        *self.deadline.lock().expect("not poisoned") = Some(deadline);
        // send_if_modified: a renewal must not wake the services' loops
        // (watch receivers are woken by every send).
        let won = self.flag.send_if_modified(|leading| !std::mem::replace(leading, true));
        if won {
            tracing::info!(id = %self.id, "elected leader: running the maintenance services");
            self.events.emit(Event::LeaderElected);
        }
    }

    /// Drops leadership (locally) and says why.
    pub fn lost(&self, why: &str) {
        *self.deadline.lock().expect("not poisoned") = None;
        let was = self.flag.send_if_modified(|leading| std::mem::replace(leading, false));
        if was {
            // Resigning at shutdown is routine; losing the lease is not.
            if why == RESIGNED {
                tracing::info!(id = %self.id, why, "no longer the leader");
            } else {
                tracing::warn!(id = %self.id, why, "no longer the leader");
            }
            self.events.emit(Event::LeaderLost);
        }
    }

    /// One election round: renews the lease if held, takes the row if its
    /// lease expired. Returns whether this process leads now.
    pub async fn elect(&self, db: &Db) -> Result<bool> {
        let sent = Instant::now();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        // An attempt that hangs must not outlive the lease it would renew.
        let blocked_for = self.blocked_since.lock().expect("not poisoned").map(|t| t.elapsed());
        let evict = blocked_for.is_some_and(|b| b >= self.limits.evict_after);
        let attempt = async {
            let conn = db.conn().await?;
            if evict {
                self.elect_evicting(db, &conn, lease_ms).await
            } else {
                db::leader::elect(conn.on(), &self.id, lease_ms, &self.limits.elect_lock).await
            }
        };
        let outcome = match tokio::time::timeout(self.lease / 2, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout { after: self.lease / 2 }),
        };
        {
            let mut since = self.blocked_since.lock().expect("not poisoned");
            match &outcome {
                Err(e) if e.sqlstate() == Some(LOCK_NOT_AVAILABLE) => {
                    since.get_or_insert_with(Instant::now);
                }
                _ => *since = None,
            }
        }
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
                if !self.is_leader() {
                    self.lost("the lease ran out while it could not be renewed");
                }
                Err(e)
            }
        }
    }

    /// An election on `conn` while, on a second connection, the sessions
    /// that keep it waiting on the leader row (and wait on nothing
    /// themselves) are ended: the election has waited longer than any pass
    /// may last, so what holds the row is stuck past its own limits.
    async fn elect_evicting(&self, db: &Db, conn: &db::Conn, lease_ms: i64) -> Result<Option<db::leader::Held>> {
        let pid = db::leader::backend(conn.on()).await?;
        let other = db.conn().await?;
        let elect = db::leader::elect(conn.on(), &self.id, lease_ms, &self.limits.elect_lock);
        tokio::pin!(elect);
        // Look for what blocks it a few times while it waits (it must be
        // waiting already to be seen blocked); the election's own lock
        // timeout ends the attempt.
        let step = self.lease / 16;
        loop {
            tokio::select! {
                biased;
                r = &mut elect => return r,
                () = tokio::time::sleep(step) => {}
            }
            match db::leader::evict(other.on(), pid).await {
                Ok(ended) if ended.is_empty() => {}
                Ok(ended) => {
                    for (pid, _) in &ended {
                        tracing::warn!(
                            id = %self.id, pid,
                            "ended a session that held the leader row past every limit of a pass (a former leader stuck mid-message)"
                        );
                    }
                    return elect.await;
                }
                Err(e) => {
                    tracing::warn!(id = %self.id, error = %e, "could not end the session holding the leader row");
                    return elect.await;
                }
            }
        }
    }

    /// Gives up leadership: deletes the leader row if held.
    pub async fn resign(&self, db: &Db) -> Result<bool> {
        let conn = db.conn().await?;
        let held = db::leader::resign(conn.on(), &self.id).await?;
        self.lost(RESIGNED);
        Ok(held)
    }
}

/// The election as a service: a round every third of the lease, and, at
/// shutdown, a resignation so another process takes over at once. Only a
/// process that holds its worker id (`registered`, when it is a worker's)
/// stands: two processes with one id would share the leadership
/// (`runtime/registry.rs`).
pub(crate) struct Elector {
    pub leadership: Arc<Leadership>,
    pub db: Db,
    pub registered: Option<watch::Receiver<bool>>,
}

/// How often an elector whose worker does not hold its id yet looks again.
const REGISTERED_CHECK: Duration = Duration::from_millis(20);

impl Elector {
    fn is_registered(&self) -> bool {
        self.registered.as_ref().is_none_or(|rx| *rx.borrow())
    }
}

impl Service for Elector {
    const NAME: &'static str = "elector";
    type Report = bool;

    async fn run_once(&self) -> Result<Option<bool>> {
        if !self.is_registered() {
            if self.leadership.is_leader() {
                self.leadership.lost("this worker's id is no longer registered to it");
            }
            return Ok(None);
        }
        self.leadership.elect(&self.db).await.map(Some)
    }

    fn next_pass(&self, _last: &Result<Option<bool>>) -> Duration {
        // Waiting for the id to be ours costs no query: look again soon.
        if self.is_registered() { self.leadership.lease / 3 } else { REGISTERED_CHECK }
    }

    async fn stopped(&self) {
        if let Err(e) = self.leadership.resign(&self.db).await {
            tracing::warn!(error = %e, "could not resign leadership; it passes on when the lease expires");
        }
    }
}
