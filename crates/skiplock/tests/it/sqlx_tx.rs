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
    let gone = t.client.enqueue_many_sqlx_tx(&mut tx, vec![job()]).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(t.client.job(gone[0].id).await.unwrap().is_none());

    let mut tx = conn.begin().await.unwrap();
    sqlx::query("INSERT INTO orders DEFAULT VALUES").execute(&mut *tx).await.unwrap();
    let kept = t.client.enqueue_many_sqlx_tx(&mut tx, vec![job(), job()]).await.unwrap();
    tx.commit().await.unwrap();
    let row = t.client.job(kept[1].id).await.unwrap().unwrap();
    assert_eq!((row.kind.as_str(), row.tags.clone()), ("ship", vec!["eu".to_owned()]));
    assert_eq!(row.args["order"], 1);
    assert_eq!(t.count("jobs", "true").await, 2);
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Welcome {
    user_id: i64,
}
impl skiplock::Job for Welcome {
    const KIND: &'static str = "welcome";
    const QUEUE: &'static str = "mail";
}

#[tokio::test]
async fn one_typed_job_commits_or_rolls_back_with_the_sqlx_transaction() {
    let t = fresh().await;
    let pool = sqlx::PgPool::connect(t.db.url()).await.unwrap();
    sqlx::query("CREATE TABLE users (id bigserial PRIMARY KEY, name text)").execute(&pool).await.unwrap();

    for commit in [false, true] {
        let mut tx = pool.begin().await.unwrap();
        let (user_id,): (i64,) =
            sqlx::query_as("INSERT INTO users (name) VALUES ('ada') RETURNING id").fetch_one(&mut *tx).await.unwrap();
        let job = t.client.enqueue_sqlx_tx(&mut *tx, &Welcome { user_id }, EnqueueOptions::new()).await.unwrap();
        assert!(job.inserted);
        if commit {
            tx.commit().await.unwrap();
            let row = t.client.job(job.id).await.unwrap().expect("committed with its user");
            assert_eq!((row.kind.as_str(), row.queue.as_str()), ("welcome", "mail"));
            assert_eq!(row.args["user_id"], user_id);
        } else {
            tx.rollback().await.unwrap();
            assert!(t.client.job(job.id).await.unwrap().is_none(), "rolled back with its user");
        }
    }
    // A unique key taken inside the transaction comes back as the holder.
    let mut conn = pool.acquire().await.unwrap();
    let opts = || EnqueueOptions::new().unique_key("welcome:1");
    let first = t.client.enqueue_sqlx_tx(&mut conn, &Welcome { user_id: 1 }, opts()).await.unwrap();
    let again = t.client.enqueue_sqlx_tx(&mut conn, &Welcome { user_id: 1 }, opts()).await.unwrap();
    assert!(first.inserted && !again.inserted);
    assert_eq!(again.id, first.id);
}

#[tokio::test]
async fn sqlx_errors_are_classified_like_the_drivers_own() {
    let t = fresh().await;
    let mut conn = sqlx::PgConnection::connect(t.db.url()).await.unwrap();
    // The server refuses inserts of two kinds: one with a serialization
    // failure (retrying may help), one with a data error (it cannot).
    sqlx::query(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.kind = 'race' THEN RAISE EXCEPTION 'lost a race' USING ERRCODE = '40001'; END IF;
           IF NEW.kind = 'bad' THEN RAISE EXCEPTION 'bad data' USING ERRCODE = '22023'; END IF;
           RETURN NEW;
         END $$",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("CREATE TRIGGER refuse BEFORE INSERT ON skiplock.jobs FOR EACH ROW EXECUTE FUNCTION refuse()")
        .execute(&mut conn)
        .await
        .unwrap();
    let job = |kind: &str| vec![NewJob::new(kind, &serde_json::json!({}), EnqueueOptions::new()).unwrap()];

    let race = t.client.enqueue_many_sqlx_tx(&mut conn, job("race")).await.unwrap_err();
    assert!(matches!(race, skiplock::Error::Sqlx(_)), "{race:?}");
    assert_eq!(race.sqlstate(), Some("40001"));
    assert!(race.is_transient());

    let bad = t.client.enqueue_many_sqlx_tx(&mut conn, job("bad")).await.unwrap_err();
    assert_eq!(bad.sqlstate(), Some("22023"));
    assert!(!bad.is_transient());

    // A schema that is not there: the server's 3F000, not transient.
    let other = skiplock::Client::builder(t.db.url()).schema("nowhere").unwrap().build().unwrap();
    let missing = other.enqueue_many_sqlx_tx(&mut conn, job("fine")).await.unwrap_err();
    assert_eq!(missing.sqlstate(), Some("3F000"));
    assert!(!missing.is_transient());

    // A connection the server ended: transient.
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await.unwrap();
    t.sql().await.execute("SELECT pg_terminate_backend($1)", &[&pid]).await.unwrap();
    let gone = t.client.enqueue_many_sqlx_tx(&mut conn, job("fine")).await.unwrap_err();
    assert!(gone.is_transient(), "{gone:?}");
    // None of the refused jobs is there.
    assert_eq!(t.count("jobs", "true").await, 0);
}
