//! Enqueue inside a caller's sqlx transaction (feature `sqlx`).

use skiplock::{EnqueueOptions, NewJob};
use sqlx::Connection as _;

use crate::support::fresh;

#[tokio::test]
async fn a_job_commits_or_rolls_back_with_the_sqlx_transaction() {
    let t = fresh().await;
    let mut conn = sqlx::PgConnection::connect(t.db.url()).await.unwrap();
    sqlx::query("CREATE TABLE orders (id bigserial PRIMARY KEY)").execute(&mut conn).await.unwrap();

    let job = || NewJob::new("ship", &serde_json::json!({ "order": 1 }), EnqueueOptions::new().tag("eu")).unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("INSERT INTO orders DEFAULT VALUES").execute(&mut *tx).await.unwrap();
    let gone = t.client.enqueue_sqlx(&mut tx, vec![job()]).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(t.client.job(gone[0].id).await.unwrap().is_none());

    let mut tx = conn.begin().await.unwrap();
    sqlx::query("INSERT INTO orders DEFAULT VALUES").execute(&mut *tx).await.unwrap();
    let kept = t.client.enqueue_sqlx(&mut tx, vec![job(), job()]).await.unwrap();
    tx.commit().await.unwrap();
    let row = t.client.job(kept[1].id).await.unwrap().unwrap();
    assert_eq!((row.kind.as_str(), row.tags.clone()), ("ship", vec!["eu".to_owned()]));
    assert_eq!(row.args["order"], 1);
    assert_eq!(t.count("jobs", "true").await, 2);
}
