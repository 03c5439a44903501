//! Shared test setup: a fresh migrated database and a client on it.

use skiplock::{Client, ClientBuilder, NewJob};
use skiplock_testdb::TestDatabase;

/// A fresh database with the skiplock schema, and a client for it.
pub struct TestDb {
    pub db: TestDatabase,
    pub client: Client,
}

/// The template key changes whenever a migration does.
fn template_key() -> String {
    format!("skiplock-{}", skiplock::fingerprint())
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
