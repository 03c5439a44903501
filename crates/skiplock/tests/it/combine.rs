//! Concurrent single enqueues sharing statements (group commit): every call
//! gets its own job, a refused job fails alone, a lost connection fails its
//! whole statement without sending any job twice.
//!
//! Each test holds the jobs table in SHARE mode from another session, so the
//! client's first statements wait for the lock while the other calls queue
//! behind them. The tests run on tokio's single-threaded test runtime: the
//! spawned calls all reach the client before its first statement is sent.

use skiplock::{EnqueueOptions, Error, NewJob};
use tokio::task::JoinSet;

use crate::support::{TestDb, fresh, fresh_with};

/// Holds the jobs table against inserts until the transaction ends.
async fn block_inserts(t: &TestDb) -> tokio_postgres::Client {
    let pg = t.sql().await;
    pg.batch_execute("BEGIN; LOCK TABLE skiplock.jobs IN SHARE MODE").await.unwrap();
    pg
}

/// Starts `n` enqueue calls of kind `kind(i)` with args `{"i": i}`.
fn spawn_enqueues(
    t: &TestDb,
    n: usize,
    kind: impl Fn(usize) -> &'static str,
) -> JoinSet<(usize, skiplock::Result<i64>)> {
    let mut set = JoinSet::new();
    for i in 0..n {
        let (client, kind) = (t.client.clone(), kind(i));
        set.spawn(async move {
            let job = NewJob::new(kind, &serde_json::json!({ "i": i }), EnqueueOptions::new()).unwrap();
            (i, client.enqueue_job(job).await.map(|e| e.id))
        });
    }
    set
}

/// Each call's result, by its index.
async fn results(mut set: JoinSet<(usize, skiplock::Result<i64>)>, n: usize) -> Vec<skiplock::Result<i64>> {
    let mut out: Vec<Option<skiplock::Result<i64>>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, r) = r.unwrap();
        out[i] = Some(r);
    }
    out.into_iter().map(|r| r.expect("every call returned")).collect()
}

/// The transactions that inserted the hot table's rows.
async fn transactions(t: &TestDb) -> i64 {
    t.sql().await.query_one("SELECT count(DISTINCT xmin::text) FROM skiplock.jobs", &[]).await.unwrap().get(0)
}

/// Asserts that job `id` exists once, with args `{"i": i}`.
async fn assert_stored(t: &TestDb, id: i64, i: usize) {
    let row = t.client.job(id).await.unwrap().unwrap_or_else(|| panic!("job {id} of call {i} is missing"));
    assert_eq!(row.args, serde_json::json!({ "i": i }), "job {id} holds call {i}'s args");
}

#[tokio::test]
async fn concurrent_enqueues_share_statements_and_each_call_gets_its_own_job() {
    let t = fresh().await;
    let lock = block_inserts(&t).await;
    let set = spawn_enqueues(&t, 50, |_| "k");
    t.wait_for_lock_waiter("the first combined statement").await;
    lock.batch_execute("COMMIT").await.unwrap();
    let ids: Vec<i64> = results(set, 50).await.into_iter().map(Result::unwrap).collect();
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 50, "50 calls, 50 different jobs");
    assert_eq!(t.count("jobs", "true").await, 50, "nothing more was inserted");
    for (i, &id) in ids.iter().enumerate() {
        assert_stored(&t, id, i).await;
    }
    // At most two statements were in flight while the table was held; every
    // other call waited, and the next statement of each took them all.
    let txs = transactions(&t).await;
    assert!(txs <= 4, "50 calls committed in {txs} transactions; combined, at most 4");
}

#[tokio::test]
async fn with_combining_off_every_call_is_a_transaction_of_its_own() {
    let t = fresh_with(|b| b.combine_enqueues(false)).await;
    let lock = block_inserts(&t).await;
    let set = spawn_enqueues(&t, 10, |_| "k");
    t.wait_for_lock_waiter("the first enqueue").await;
    lock.batch_execute("COMMIT").await.unwrap();
    for r in results(set, 10).await {
        r.unwrap();
    }
    assert_eq!(transactions(&t).await, 10);
}

#[tokio::test]
async fn a_job_the_server_refuses_fails_alone_and_the_others_of_its_statement_commit() {
    let t = fresh().await;
    t.sql()
        .await
        .batch_execute(
            "CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN RAISE EXCEPTION 'poison is refused'; END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON skiplock.jobs
               FOR EACH ROW WHEN (NEW.kind = 'poison') EXECUTE FUNCTION public.refuse_poison();",
        )
        .await
        .unwrap();
    let lock = block_inserts(&t).await;
    let set = spawn_enqueues(&t, 20, |i| if i == 7 { "poison" } else { "k" });
    t.wait_for_lock_waiter("the first combined statement").await;
    lock.batch_execute("COMMIT").await.unwrap();
    let out = results(set, 20).await;
    for (i, r) in out.into_iter().enumerate() {
        if i == 7 {
            let e = r.expect_err("the poison job is refused");
            assert!(matches!(e, Error::Database(_)), "its own database error, not a shared one: {e:?}");
            assert!(e.to_string().contains("poison is refused"), "{e}");
        } else {
            assert_stored(&t, r.unwrap_or_else(|e| panic!("call {i} failed with its neighbour: {e}")), i).await;
        }
    }
    assert_eq!(t.count("jobs", "true").await, 19, "each other job once");
}

#[tokio::test]
async fn a_session_ended_under_a_statement_fails_its_jobs_and_sends_none_again() {
    let t = fresh().await;
    let lock = block_inserts(&t).await;
    let set = spawn_enqueues(&t, 20, |_| "k");
    t.wait_for_lock_waiter("the first combined statement").await;
    // Ends the sessions waiting with jobs (FATAL 57P01: for all the client
    // knows, after a commit), then lets the table go.
    lock.batch_execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .await
    .unwrap();
    lock.batch_execute("COMMIT").await.unwrap();
    let out = results(set, 20).await;
    let failed = out.iter().filter(|r| r.is_err()).count();
    assert!(failed >= 1, "the jobs of the ended sessions' statements fail");
    for r in out.iter().filter_map(|r| r.as_ref().err()) {
        assert!(r.is_transient(), "worth retrying: {r:?}");
    }
    let ok = out.iter().filter(|r| r.is_ok()).count() as i64;
    assert_eq!(t.count("jobs", "true").await, ok, "only the calls that succeeded have jobs: none sent twice");
    // The client goes on: its statements in flight were counted out.
    t.client.enqueue_job(NewJob::new("k", &1, EnqueueOptions::new()).unwrap()).await.unwrap();
}

/// Calls from many threads at once, back to back: every one returns (none
/// is left waiting for a sender that has gone), each with a job of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_from_many_threads_all_return_with_a_job_each() {
    let t = fresh().await;
    let mut set = JoinSet::new();
    for task in 0..16 {
        let client = t.client.clone();
        set.spawn(async move {
            let mut ids = Vec::new();
            for i in 0..150 {
                let job =
                    NewJob::new("k", &serde_json::json!({ "task": task, "i": i }), EnqueueOptions::new()).unwrap();
                let call = client.enqueue_job(job);
                ids.push(
                    tokio::time::timeout(std::time::Duration::from_secs(60), call).await.expect("returned").unwrap().id,
                );
            }
            ids
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.extend(r.unwrap());
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 16 * 150, "a different job for every call");
    assert_eq!(t.count("jobs", "true").await, 16 * 150, "and nothing more");
}
