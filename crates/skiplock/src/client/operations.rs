//! What an operator asks about the fleet's maintenance: who leads, and the
//! periodic jobs' schedules.

use super::Client;
use crate::db;
use crate::error::Result;
use crate::maintenance::{LeaderInfo, PeriodicInfo};

impl Client {
    /// The process that leads the fleet's maintenance now, if any (a lease
    /// that ran out does not count).
    ///
    /// # Errors
    ///
    /// Database errors only.
    ///
    /// # Example
    ///
    /// ```no_run
    /// # async fn run(client: skiplock::Client) -> Result<(), Box<dyn std::error::Error>> {
    /// match client.leader().await? {
    ///     Some(l) => println!("{} leads until {}", l.id, l.expires_at),
    ///     None => println!("no leader: is any worker running?"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leader(&self) -> Result<Option<LeaderInfo>> {
        let conn = self.db().await?;
        let row = db::leader::get(&conn, self.stmts()).await.map_err(|e| self.pg(e))?;
        Ok(row.map(|(id, h)| LeaderInfo { id, elected_at: h.elected_at, expires_at: h.expires_at }))
    }

    /// Every periodic job the fleet has registered, with its next run.
    ///
    /// # Errors
    ///
    /// Database errors only.
    pub async fn periodic_jobs(&self) -> Result<Vec<PeriodicInfo>> {
        let conn = self.db().await?;
        let rows = db::periodic::list(&conn, self.stmts(), None).await.map_err(|e| self.pg(e))?;
        Ok(rows.into_iter().map(PeriodicInfo::from).collect())
    }
}
