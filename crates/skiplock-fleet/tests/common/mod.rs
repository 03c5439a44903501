//! What the fleet's test binaries share: a fresh database, worker processes
//! on it, and bounded polls of the database.

#![allow(dead_code)] // each test binary uses its own subset

use std::time::{Duration, Instant};

use skiplock::Client;
use skiplock_fleet::Fleet;
use skiplock_testdb::TestDatabase;

/// The worker binary.
pub const WORKER: &str = env!("CARGO_BIN_EXE_skiplock-fleet-worker");

/// A fresh, migrated database, cloned from the template all tests share.
pub async fn fresh() -> TestDatabase {
    skiplock_testdb::fresh_database(&format!("skiplock-{}", skiplock::__private::fingerprint()), |url| async move {
        Client::connect(&url)?.migrate().await?;
        Ok(())
    })
    .await
    .expect("a fresh test database")
}

/// Worker processes on `db`.
pub fn fleet(db: &TestDatabase) -> Fleet {
    Fleet::new(WORKER, db.url())
}

/// Polls `check` every `every` until it returns `Some`, for at most `limit`:
/// for effects of other processes, which send no events.
pub async fn poll<T, F, Fut>(what: &str, every: Duration, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(every).await;
    }
}
