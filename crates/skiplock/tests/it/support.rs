//! Shared test setup: a fresh migrated database and a client on it.

use std::time::Duration;

use skiplock::{Client, ClientBuilder, Event, JobState, NewJob};
use skiplock_testdb::TestDatabase;
use tokio::sync::broadcast::Receiver;

/// A fresh database with the skiplock schema, and a client for it.
pub struct TestDb {
    pub db: TestDatabase,
    pub client: Client,
}

/// The template key changes whenever a migration does.
fn template_key() -> String {
    format!("skiplock-{}", skiplock::__private::fingerprint())
}

/// The plan of an `EXPLAIN (…, FORMAT JSON) …` statement run on `pg`: its
/// top node (`Plan`).
pub async fn explain_json(pg: &tokio_postgres::Client, explain: &str) -> serde_json::Value {
    let rows = pg.simple_query(explain).await.unwrap_or_else(|e| panic!("{explain}: {e}"));
    let text = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
            _ => None,
        })
        .expect("a plan");
    serde_json::from_str::<serde_json::Value>(&text).unwrap()[0]["Plan"].clone()
}

/// A fresh, migrated database and a default client.
pub async fn fresh() -> TestDb {
    fresh_with(|b| b).await
}

/// A fresh, migrated database and a client built with `f`.
pub async fn fresh_with(f: impl FnOnce(ClientBuilder) -> ClientBuilder) -> TestDb {
    let db = skiplock_testdb::fresh_database(&template_key(), |url| async move {
        let client = Client::connect(&url)?;
        client.migrate().await?;
        Ok(())
    })
    .await
    .expect("a fresh test database");
    let client = f(Client::builder(db.url())).build().expect("client");
    TestDb { db, client }
}

impl TestDb {
    /// A plain connection, for checks in SQL.
    pub async fn sql(&self) -> tokio_postgres::Client {
        self.db.connect().await.expect("connect")
    }

    /// Counts rows of `table` in the skiplock schema matching `cond`.
    pub async fn count(&self, table: &str, cond: &str) -> i64 {
        let q = format!("SELECT count(*) FROM skiplock.{table} WHERE {cond}");
        self.sql().await.query_one(&q, &[]).await.unwrap().get(0)
    }

    /// Waits (at most 20 s) until a session of this database waits for a
    /// lock; `what` names the wait for the failure message.
    pub async fn wait_for_lock_waiter(&self, what: &str) {
        let pg = self.sql().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let waiting: i64 = pg
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if waiting > 0 {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: no session waited for a lock within 20s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Enqueues `n` jobs of `kind` on `queue` with args `{"i": i}`.
    pub async fn seed(&self, queue: &str, kind: &str, n: usize) -> Vec<i64> {
        let mut ids = Vec::with_capacity(n);
        let jobs: Vec<NewJob> = (0..n)
            .map(|i| {
                NewJob::new(kind, &serde_json::json!({ "i": i }), skiplock::EnqueueOptions::new().queue(queue)).unwrap()
            })
            .collect();
        for chunk in jobs.chunks(10_000) {
            ids.extend(self.client.enqueue_many(chunk.to_vec()).await.unwrap().into_iter().map(|e| e.id));
        }
        ids
    }
}

/// Waits (at most 30s) for an event matching `pred`.
pub async fn wait_for(rx: &mut Receiver<Event>, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return ev,
            Ok(Ok(_)) => {}
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => panic!("lagged by {n} events"),
            Ok(Err(e)) => panic!("event stream ended: {e}"),
            Err(_) => panic!("no matching event within 30s"),
        }
    }
}

/// Waits until `n` jobs have reached a final state.
pub async fn wait_finished(rx: &mut Receiver<Event>, n: usize) -> Vec<(i64, JobState)> {
    let mut done = Vec::new();
    while done.len() < n {
        if let Event::Finished { id, state, .. } = wait_for(rx, |e| matches!(e, Event::Finished { .. })).await
            && state.is_final()
        {
            done.push((id, state));
        }
    }
    done
}

/// Waits until every job of `ids` was completed (any other final state fails).
pub async fn wait_completed(rx: &mut Receiver<Event>, ids: &[i64]) {
    let mut left: std::collections::HashSet<i64> = ids.iter().copied().collect();
    while !left.is_empty() {
        if let Event::Finished { id, state, .. } = wait_for(rx, |e| matches!(e, Event::Finished { .. })).await
            && left.contains(&id)
            && state.is_final()
        {
            assert_eq!(state, JobState::Completed, "job {id}");
            left.remove(&id);
        }
    }
}
