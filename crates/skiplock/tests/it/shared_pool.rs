//! A client on a pool of the caller's (`ClientBuilder::pool`): the queue's
//! statements run on it, skiplock opens no pool of its own, and the
//! caller's queries on it see none of skiplock's session settings.

use skiplock::deadpool_postgres::{Manager, Pool};
use skiplock::tokio_postgres::NoTls;
use skiplock::{Client, EnqueueOptions, JobState, NewJob, Worker};

use crate::support::{fresh, wait_finished};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_the_callers_pool_runs_there_and_leaves_its_settings_alone() {
    let t = fresh().await;
    let mut cfg: skiplock::tokio_postgres::Config = t.db.url().parse().unwrap();
    cfg.application_name("users-app");
    let pool = Pool::builder(Manager::new(cfg, NoTls)).max_size(20).build().unwrap();
    let client = Client::builder(t.db.url()).pool(pool.clone()).build().unwrap();

    let worker = Worker::builder(client.clone())
        .queue("default", 4)
        .maintenance(false)
        .register_raw("hello", None, |_args, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    let jobs: Vec<NewJob> = (0..50).map(|i| NewJob::new("hello", &i, EnqueueOptions::new()).unwrap()).collect();
    client.enqueue_many(jobs).await.unwrap();
    let done = wait_finished(&mut events, 50).await;
    assert!(done.iter().all(|(_, s)| *s == JobState::Completed));

    // The queue's statements ran on the caller's pool; the only
    // connections skiplock made itself are the worker's heartbeat and
    // LISTEN connections (named `skiplock`).
    assert!(pool.status().size >= 1);
    let sql = t.sql().await;
    let by_app = |app: &'static str| {
        let sql = &sql;
        async move {
            let n: i64 = sql
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()", &[&app])
                .await
                .unwrap()
                .get(0);
            n
        }
    };
    assert!(by_app("users-app").await >= 1);
    assert!(by_app("skiplock").await <= 2, "no pool of skiplock's own beside the caller's");

    // The caller's connections keep the server's settings.
    let conn = pool.get().await.unwrap();
    for (setting, default) in [("plan_cache_mode", "auto"), ("jit", "on")] {
        let row = conn.query_one(&format!("SHOW {setting}"), &[]).await.unwrap();
        assert_eq!(row.get::<_, String>(0), default, "{setting}");
    }
    drop(conn);
    handle.shutdown().await;
}
