//! The lifecycle's concurrent paths, on many connections at once: claims
//! racing operator cancels and the rescuer, retries racing the scheduler.
//! The model test (model.rs) checks every step on one connection; these
//! check that the statements' locking (SKIP LOCKED, the fences re-checked on
//! a row that changed under them) keeps the same promises when they
//! interleave: one row per job, at most one holder at a time, exactly one
//! final state written per run of a job.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng as _;
use skiplock::{CancelResult, Client, EnqueueOptions, Finish, JobState, NewJob, Outcome};

use crate::support::{TestDb, fresh};

/// The value, `None` for an error that retrying may fix (a deadlock between
/// two statements), a panic for any other.
fn transient_ok<T>(r: skiplock::Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) if e.is_transient() => None,
        Err(e) => panic!("{e}"),
    }
}

/// Every job's rows: fails if one id is in two rows, or the hot table holds
/// a running job without a lease or a lease without a running job.
async fn one_row_each(t: &TestDb) -> HashMap<i64, JobState> {
    let rows = t
        .sql()
        .await
        .query(
            "SELECT id, state::text, (state = 'running') = (lease_token IS NOT NULL) FROM skiplock.jobs
             UNION ALL SELECT id, state::text, true FROM skiplock.jobs_archive",
            &[],
        )
        .await
        .unwrap();
    let mut out = HashMap::new();
    for r in rows {
        let id: i64 = r.get(0);
        assert!(r.get::<_, bool>(2), "job {id}: a lease without a run, or a run without a lease");
        let state: String = r.get(1);
        assert!(out.insert(id, state.parse().unwrap()).is_none(), "job {id} is in two rows");
    }
    out
}

/// The low-water marks' advancer (a worker runs it every 20 ms), here back
/// to back: claims start from the marks, so a mark that passed an available
/// job would leave it unclaimed and the test undrained.
async fn advancer(t: &TestDb, done: &tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
    let (pg, done) = (t.sql().await, done.clone());
    tokio::spawn(async move {
        while !done.is_cancelled() {
            pg.execute("SELECT skiplock.mark_advance('default')", &[]).await.unwrap();
            tokio::task::yield_now().await;
        }
    })
}

/// The final states written per job, and who wrote each.
type Finals = HashMap<i64, Vec<(&'static str, JobState)>>;

/// Four claimers complete, fail or release what they claim while an
/// operator cancels jobs at random (running ones are flagged, the others
/// cancelled at once) and a rescuer takes back leases an expirer makes run
/// out. Every final state of every job is written exactly once, by the
/// claim that held it, the cancel, or the rescuer, never by two; no two
/// claims ever hold one job at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_cancels_and_rescues_racing_write_one_final_state_per_job() {
    const JOBS: usize = 2000;
    let t = fresh().await;
    // A third with one attempt: a rescue of theirs discards them.
    let opts = |i: usize| EnqueueOptions::new().max_attempts(if i % 3 == 0 { 1 } else { 3 });
    let jobs: Vec<NewJob> = (0..JOBS).map(|i| NewJob::new("race", &i, opts(i)).unwrap()).collect();
    let ids: Vec<i64> = t.client.enqueue_many(jobs).await.unwrap().into_iter().map(|e| e.id).collect();
    // Final states written, per job, by whom.
    let finals: Arc<Mutex<Finals>> = Arc::default();
    // Leases held now: a second claim of a held job is a double holder.
    let held: Arc<Mutex<HashMap<i64, i64>>> = Arc::default();
    let lease = Duration::from_secs(60);
    // A worker that claims the first jobs and dies: only the rescuer ever
    // takes them back (the expirer runs their leases out once the others
    // are done), so every path writes finals however fast the rest drains:
    // the one-attempt jobs among them (ids 0, 3, ...) are the rescuer's to
    // discard.
    let dead = t.client.claim("default", 20, lease, "dead").await.unwrap();
    assert_eq!(dead.len(), 20);
    let done = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (c, finals, held, done) =
            (Client::connect(t.db.url()).unwrap(), finals.clone(), held.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !done.is_cancelled() {
                let Some(claimed) = transient_ok(c.claim("default", 20, lease, &format!("w{w}")).await) else {
                    continue;
                };
                if claimed.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                let mut batch = Vec::new();
                for j in &claimed {
                    if let Some(other) = held.lock().unwrap().insert(j.id, j.lease.token) {
                        // Only a rescued lease may be held again: its old
                        // token must be gone from the table by now.
                        assert_ne!(other, j.lease.token, "one claim handed out twice");
                    }
                    let outcome = match rand::rng().random_range(0..10) {
                        0 => Outcome::Failed { error: "x".into(), retry_in: Duration::ZERO },
                        1 => Outcome::Released,
                        _ => Outcome::Completed,
                    };
                    batch.push(Finish { lease: j.lease, outcome });
                }
                // A deadlock with a cancel (40P01) is transient: the same
                // batch again, as the runtime does.
                let report = loop {
                    if let Some(r) = transient_ok(c.finish(&batch).await) {
                        break r;
                    }
                };
                let mut held = held.lock().unwrap();
                for f in &batch {
                    if held.get(&f.lease.id) == Some(&f.lease.token) {
                        held.remove(&f.lease.id);
                    }
                }
                let mut finals = finals.lock().unwrap();
                for (id, state) in report.applied {
                    if state.is_final() {
                        finals.entry(id).or_default().push(("claim", state));
                    }
                }
            }
        }));
    }
    // The operator.
    let (c, finals_c, ids_c, done_c) =
        (Client::connect(t.db.url()).unwrap(), finals.clone(), ids.clone(), done.clone());
    tasks.push(tokio::spawn(async move {
        while !done_c.is_cancelled() {
            let pick: Vec<i64> = (0..5).map(|_| ids_c[rand::rng().random_range(0..ids_c.len())]).collect();
            let Some(results) = transient_ok(c.cancel(&pick).await) else { continue };
            for (id, r) in results {
                if r == CancelResult::Cancelled {
                    finals_c.lock().unwrap().entry(id).or_default().push(("cancel", JobState::Cancelled));
                }
            }
            tokio::task::yield_now().await;
        }
    }));
    tasks.push(advancer(&t, &done).await);
    // Leases running out, and the rescuer.
    let (url, finals_r, done_r) = (t.db.url().to_owned(), finals.clone(), done.clone());
    tasks.push(tokio::spawn(async move {
        let c = Client::connect(&url).unwrap();
        let pg = skiplock::connect_raw(&url).await.unwrap();
        while !done_r.is_cancelled() {
            // One row per statement: the expirer takes no part in lock waits.
            pg.execute(
                "UPDATE skiplock.jobs SET lease_expires_at = now() - interval '1 second'
                 WHERE id = (SELECT id FROM skiplock.jobs WHERE state = 'running' ORDER BY random() LIMIT 1)",
                &[],
            )
            .await
            .unwrap();
            let Some(rescued) = transient_ok(c.rescue(100).await) else { continue };
            for (id, state) in rescued.rescued {
                if state.is_final() {
                    finals_r.lock().unwrap().entry(id).or_default().push(("rescue", state));
                }
            }
            tokio::task::yield_now().await;
        }
    }));
    // Until every job is final.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while t.count("jobs", "true").await > 0 {
        assert!(std::time::Instant::now() < deadline, "not drained");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    let rows = one_row_each(&t).await;
    let finals = finals.lock().unwrap();
    for id in &ids {
        let written = finals.get(id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(written.len(), 1, "job {id}: final states written {written:?}");
        assert_eq!(rows[id], written[0].1, "job {id}: the row says what was written");
    }
    let by: HashSet<&str> = finals.values().flatten().map(|(who, _)| *who).collect();
    assert_eq!(by.len(), 3, "every path wrote some finals: {by:?}");
}

/// The scheduler promotes due jobs while an operator retries jobs at random
/// (scheduled, retryable, finished ones) and a worker claims and fails or
/// completes them: every job is in one row at every check, and each retry
/// of a finished job brings back exactly one unfinished copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retries_racing_the_scheduler_and_claims_keep_one_row_per_job() {
    const JOBS: usize = 1000;
    let t = fresh().await;
    let jobs: Vec<NewJob> = (0..JOBS)
        .map(|i| {
            let opts = EnqueueOptions::new().delay(Duration::from_millis(rand::rng().random_range(0..500)));
            NewJob::new("race", &i, opts).unwrap()
        })
        .collect();
    let ids: Vec<i64> = t.client.enqueue_many(jobs).await.unwrap().into_iter().map(|e| e.id).collect();
    let done = tokio_util::sync::CancellationToken::new();
    let mut tasks = Vec::new();
    let (c, d) = (Client::connect(t.db.url()).unwrap(), done.clone());
    tasks.push(tokio::spawn(async move {
        while !d.is_cancelled() {
            c.promote(100).await.unwrap();
            tokio::task::yield_now().await;
        }
    }));
    let (c, d, ids_c) = (Client::connect(t.db.url()).unwrap(), done.clone(), ids.clone());
    tasks.push(tokio::spawn(async move {
        while !d.is_cancelled() {
            let pick: Vec<i64> = (0..5).map(|_| ids_c[rand::rng().random_range(0..ids_c.len())]).collect();
            c.retry(&pick).await.unwrap();
            tokio::task::yield_now().await;
        }
    }));
    for w in 0..2 {
        let (c, d) = (Client::connect(t.db.url()).unwrap(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !d.is_cancelled() {
                let claimed = c.claim("default", 20, Duration::from_secs(60), &format!("w{w}")).await.unwrap();
                let batch: Vec<Finish> = claimed
                    .iter()
                    .map(|j| {
                        let outcome = if j.attempt < 2 {
                            Outcome::Failed { error: "again".into(), retry_in: Duration::from_millis(50) }
                        } else {
                            Outcome::Completed
                        };
                        Finish { lease: j.lease, outcome }
                    })
                    .collect();
                c.finish(&batch).await.unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for _ in 0..40 {
        let rows = one_row_each(&t).await;
        assert_eq!(rows.len(), JOBS, "every job in exactly one row");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done.cancel();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(one_row_each(&t).await.len(), JOBS);
}

/// Statements that lock many jobs' rows lock them in id order, whatever
/// order their caller gives: two heartbeats of the same leases in opposite
/// orders (a worker's heartbeat and its finish, which used to deadlock with
/// 40P01 now and then under load, are the same shape) never deadlock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_of_the_same_leases_in_opposite_orders_never_deadlock() {
    let t = fresh().await;
    t.seed("default", "k", 2000).await;
    let lease = Duration::from_secs(60);
    let held: Vec<_> = t.client.claim("default", 2000, lease, "w").await.unwrap().iter().map(|j| j.lease).collect();
    assert_eq!(held.len(), 2000);
    let mut reversed = held.clone();
    reversed.reverse();
    let (a, b) = (Client::connect(t.db.url()).unwrap(), Client::connect(t.db.url()).unwrap());
    for round in 0..30 {
        let (x, y) = tokio::join!(a.heartbeat(&held, lease), b.heartbeat(&reversed, lease));
        for r in [x, y] {
            let r = r.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert_eq!(r.extended.len(), 2000);
        }
    }
}
