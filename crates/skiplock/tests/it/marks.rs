//! Low-water marks (migration 0006): the claim starts each priority at its
//! mark, so the marks must never pass an available job. Every path that
//! makes a job available lowers them (the triggers), an advance moves them
//! up only past what it has seen, and under a pinned horizon the claim reads
//! only a few blocks however many dead entries the consumed jobs left.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use rand::Rng as _;
use skiplock::{EnqueueOptions, NewJob, Outcome};
use tokio_postgres::Client as Pg;

use crate::support::{TestDb, explain_json, fresh};

const LEASE: Duration = Duration::from_secs(60);

/// Available jobs of `queue` below their priority's mark: a claim would
/// never see them. Must be zero at every moment.
async fn below_mark(pg: &Pg, queue: &str) -> i64 {
    pg.query_one(
        "SELECT count(*) FROM skiplock.jobs j
         JOIN skiplock.queue_marks_of($1) m ON m.priority = j.priority
         WHERE j.state = 'available' AND j.queue = $1 AND (j.run_at, j.id) < (m.run_at, m.id)",
        &[&queue],
    )
    .await
    .unwrap()
    .get(0)
}

/// One advance (without waiting for the lock): whether the marks moved.
async fn advance(pg: &Pg, queue: &str) -> bool {
    pg.query_one("SELECT skiplock.mark_advance($1)", &[&queue]).await.unwrap().get::<_, &str>(0) == "moved"
}

async fn available(t: &TestDb, queue: &str) -> i64 {
    t.count("jobs", &format!("state = 'available' AND queue = '{queue}'")).await
}

fn job(queue: &str, priority: i16, ago: Duration) -> NewJob {
    let at = Utc::now() - chrono::Duration::from_std(ago).unwrap();
    NewJob::new("m", &(), EnqueueOptions::new().queue(queue).priority(priority).run_at(at)).unwrap()
}

/// Each path that makes a job available, after the marks have moved past
/// everything there was: the job is at or above its mark, and a claim finds
/// it. Paths: a single enqueue and a COPY with keys in the past, the SQL
/// API, an enqueue in a REPEATABLE READ transaction, a failed attempt with
/// no delay, a released one, the scheduler's promotion, the rescuer, an
/// operator's retry, and an operator's own UPDATE.
#[tokio::test]
async fn every_path_that_makes_a_job_available_stays_at_or_above_its_mark() {
    let t = fresh().await;
    let pg = t.sql().await;
    let q = "marks";
    // Something to move past: three priorities, consumed.
    t.client.enqueue_many((0..30).map(|i| job(q, i % 3, Duration::ZERO)).collect()).await.unwrap();
    let held = t.client.claim(q, 100, LEASE, "w").await.unwrap();
    assert_eq!(held.len(), 30);
    assert!(advance(&pg, q).await, "nothing to move past");
    let mut seen = 0;
    // After each path: advance again (it must not pass the new job), check,
    // and claim it.
    let check = async |what: &str, want: usize, seen: &mut usize| {
        advance(&pg, q).await;
        assert_eq!(below_mark(&pg, q).await, 0, "{what}: an available job below its mark");
        let got = t.client.claim(q, 10_000, LEASE, "w").await.unwrap();
        assert_eq!(got.len(), want, "{what}: the claim did not find them");
        *seen += got.len();
        got
    };

    t.client.enqueue_job(job(q, 1, Duration::from_secs(3600))).await.unwrap();
    check("one enqueue an hour in the past", 1, &mut seen).await;

    let copied: Vec<NewJob> = (0..200).map(|i| job(q, i % 2, Duration::from_secs(60 + i as u64))).collect();
    t.client.enqueue_many(copied).await.unwrap();
    check("a COPY in the past", 200, &mut seen).await;

    pg.execute("SELECT skiplock.enqueue('m', '{}', $1, 2, now() - interval '1 day')", &[&q]).await.unwrap();
    check("the SQL API", 1, &mut seen).await;

    {
        let mut c = t.sql().await;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .start()
            .await
            .unwrap();
        tx.query_one("SELECT count(*) FROM skiplock.jobs", &[]).await.unwrap(); // the snapshot, before the advance
        advance(&pg, q).await;
        tx.execute("INSERT INTO skiplock.jobs (queue, kind) VALUES ($1, 'm')", &[&q]).await.unwrap();
        tx.commit().await.unwrap();
    }
    check("an enqueue in REPEATABLE READ", 1, &mut seen).await;

    let failed = check("nothing", 0, &mut seen).await;
    assert!(failed.is_empty());
    let (a, b) = (&held[0], &held[1]);
    t.client
        .finish(&[
            skiplock::Finish {
                lease: a.lease,
                outcome: Outcome::Failed { error: "x".into(), retry_in: Duration::ZERO },
            },
            skiplock::Finish { lease: b.lease, outcome: Outcome::Released },
        ])
        .await
        .unwrap();
    check("a failed and a released attempt", 2, &mut seen).await;

    let later = NewJob::new("m", &(), EnqueueOptions::new().queue(q).delay(Duration::from_secs(3600))).unwrap();
    let id = t.client.enqueue_job(later).await.unwrap().id;
    pg.execute("UPDATE skiplock.jobs SET run_at = now() - interval '2 hours' WHERE id = $1", &[&id]).await.unwrap();
    assert_eq!(t.client.promote(100).await.unwrap().per_queue, vec![(q.to_owned(), 1)]);
    check("a promoted job", 1, &mut seen).await;

    let c = &held[2];
    pg.execute("UPDATE skiplock.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1", &[&c.id])
        .await
        .unwrap();
    assert_eq!(t.client.rescue(100).await.unwrap().rescued.len(), 1);
    check("a rescued job", 1, &mut seen).await;

    let d = &held[3];
    t.client.finish(&[skiplock::Finish { lease: d.lease, outcome: Outcome::Discarded("x".into()) }]).await.unwrap();
    assert_eq!(t.client.retry(&[d.id]).await.unwrap(), vec![d.id]);
    check("an operator's retry", 1, &mut seen).await;

    let e = t.client.enqueue_job(job(q, 3, Duration::ZERO)).await.unwrap().id;
    advance(&pg, q).await;
    pg.execute("UPDATE skiplock.jobs SET run_at = now() - interval '1 year', priority = 4 WHERE id = $1", &[&e])
        .await
        .unwrap();
    check("an operator's UPDATE", 1, &mut seen).await;
    assert_eq!(seen, 209);
}

/// Producers enqueue jobs with random priorities and keys up to three
/// seconds in the past, holding their transactions open a moment; claimers
/// take them, complete most and release some (back to available now); two
/// advancers move the marks as fast as they can; a sampler checks the
/// invariant throughout. Every job completes exactly once, and no sample
/// ever finds an available job below its mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_claims_and_advances_never_strand_a_job() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 150;
    let t = fresh().await;
    let q = "stress";
    let produced = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for _ in 0..PRODUCERS {
        let (mut pg, produced) = (t.sql().await, produced.clone());
        producers.push(tokio::spawn(async move {
            for _ in 0..PER_PRODUCER {
                let (priority, ago_ms, hold_ms, rows) = {
                    let mut r = rand::rng();
                    (r.random_range(0..4i16), r.random_range(0..3000i64), r.random_range(0..3u64), r.random_range(1..4i64))
                };
                let tx = pg.transaction().await.unwrap();
                tx.execute(
                    "INSERT INTO skiplock.jobs (queue, kind, priority, run_at)
                     SELECT 'stress', 'm', $1, now() - $2 * interval '1 millisecond' FROM generate_series(1, $3::bigint)",
                    &[&priority, &(ago_ms as f64), &rows],
                )
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                tx.commit().await.unwrap();
                produced.fetch_add(rows, Ordering::SeqCst);
            }
        }));
    }
    let mut background = Vec::new();
    for _ in 0..2 {
        let (pg, stop) = (t.sql().await, stop.clone());
        background.push(tokio::spawn(async move {
            let mut moved = 0;
            while !stop.load(Ordering::SeqCst) {
                moved += advance(&pg, q).await as usize;
            }
            moved
        }));
    }
    let sampler = {
        let (pg, stop) = (t.sql().await, stop.clone());
        tokio::spawn(async move {
            let mut samples = 0;
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(below_mark(&pg, q).await, 0, "an available job below its mark");
                samples += 1;
            }
            samples
        })
    };
    let completed = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
    let producers_done = Arc::new(AtomicBool::new(false));
    let mut claimers = Vec::new();
    for w in 0..2 {
        let (c, completed, produced, done) = (
            skiplock::Client::connect(t.db.url()).unwrap(),
            completed.clone(),
            produced.clone(),
            producers_done.clone(),
        );
        claimers.push(tokio::spawn(async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                let finished = completed.lock().unwrap().len() as i64;
                if done.load(Ordering::SeqCst) && finished >= produced.load(Ordering::SeqCst) {
                    return;
                }
                assert!(std::time::Instant::now() < deadline, "jobs were never claimed: {finished} finished");
                let got = match c.claim(q, 10, LEASE, &format!("w{w}")).await {
                    Ok(g) => g,
                    Err(e) if e.is_transient() => continue,
                    Err(e) => panic!("{e}"),
                };
                if got.is_empty() {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                let batch: Vec<skiplock::Finish> = got
                    .iter()
                    .map(|j| skiplock::Finish {
                        lease: j.lease,
                        outcome: if rand::rng().random_range(0..8) == 0 {
                            Outcome::Released
                        } else {
                            Outcome::Completed
                        },
                    })
                    .collect();
                let report = loop {
                    match c.finish(&batch).await {
                        Ok(r) => break r,
                        Err(e) if e.is_transient() => continue,
                        Err(e) => panic!("{e}"),
                    }
                };
                let mut completed = completed.lock().unwrap();
                for (id, state) in report.applied {
                    if state == skiplock::JobState::Completed {
                        completed.push(id);
                    }
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    producers_done.store(true, Ordering::SeqCst);
    for c in claimers {
        c.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let mut moved = 0;
    for b in background {
        moved += b.await.unwrap();
    }
    let samples = sampler.await.unwrap();
    let completed = completed.lock().unwrap().clone();
    let unique: HashSet<i64> = completed.iter().copied().collect();
    assert_eq!(unique.len(), completed.len(), "a job completed twice");
    assert_eq!(completed.len() as i64, produced.load(Ordering::SeqCst));
    assert_eq!(available(&t, q).await, 0);
    assert!(moved > 0 && samples > 0, "the advancers moved {moved} times, the sampler sampled {samples}");
}

/// Under a pinned horizon (a REPEATABLE READ transaction holding its
/// snapshot), rounds of jobs are consumed and their dead index entries
/// stay. With the marks advanced, the next claim reads a few blocks; from
/// the start of the queue (marks recomputed from the start, as if there
/// were none) it reads every dead entry's block. Not timed: blocks read.
#[tokio::test]
async fn under_a_pinned_horizon_the_claim_starts_past_the_dead_entries() {
    let t = fresh().await;
    let pg = t.sql().await;
    let mut pin = t.sql().await;
    let pin =
        pin.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).start().await.unwrap();
    pin.query_one("SELECT count(*) FROM skiplock.jobs", &[]).await.unwrap();
    for _ in 0..4 {
        t.client.enqueue_many((0..5000).map(|_| job("default", 0, Duration::ZERO)).collect()).await.unwrap();
        loop {
            let got = t.client.claim("default", 500, LEASE, "w").await.unwrap();
            if got.is_empty() {
                break;
            }
            t.client.complete(&got.iter().map(|j| j.lease).collect::<Vec<_>>()).await.unwrap();
            advance(&pg, "default").await;
        }
    }
    t.client.enqueue_many((0..100).map(|_| job("default", 0, Duration::ZERO)).collect()).await.unwrap();
    let dead: i64 = t.count("jobs", "true").await;
    assert_eq!(dead, 100, "the pin must not hide rows from this count");
    advance(&pg, "default").await;
    let with_marks = claim_blocks(&pg, false).await;
    let from_start = claim_blocks(&pg, true).await;
    pin.rollback().await.unwrap();
    assert!(with_marks < 40, "the claim from its marks read {with_marks} blocks");
    assert!(
        from_start > 10 * with_marks,
        "from the start it read {from_start} blocks, from the marks {with_marks}: did the pin not keep the dead entries?"
    );
}

/// Blocks the claim's scan reads (run, rolled back). `from_start`: as if
/// the queue had no marks (an advance row at the start, rolled back too).
async fn claim_blocks(pg: &Pg, from_start: bool) -> i64 {
    pg.batch_execute("BEGIN").await.unwrap();
    if from_start {
        pg.batch_execute(
            "INSERT INTO skiplock.queue_marks (queue, is_advance, run_ats, ids) VALUES ('default', true,
             array_fill('-infinity'::timestamptz, ARRAY[10]), array_fill(0::bigint, ARRAY[10]))",
        )
        .await
        .unwrap();
    }
    let p = explain_json(
        pg,
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
         SELECT a.id FROM skiplock.queue_marks_of('default') mk
         CROSS JOIN LATERAL (SELECT a.id FROM skiplock.jobs a
             WHERE a.state = 'available' AND a.queue = 'default' AND a.priority = mk.priority
               AND (a.run_at, a.id) >= (mk.run_at, mk.id)
             ORDER BY a.run_at, a.id LIMIT 10 FOR UPDATE SKIP LOCKED) a LIMIT 10",
    )
    .await;
    pg.batch_execute("ROLLBACK").await.unwrap();
    p["Shared Hit Blocks"].as_i64().unwrap() + p["Shared Read Blocks"].as_i64().unwrap()
}

/// An enqueue in flight holds its queue's lock (shared) until it commits:
/// an advance then skips its turn ('busy') without waiting, or waits up to
/// the time it is given, and runs once the enqueue has committed.
#[tokio::test]
async fn an_advance_skips_or_waits_while_an_enqueue_is_in_flight() {
    let t = fresh().await;
    let pg = t.sql().await;
    t.client.enqueue_job(job("default", 0, Duration::ZERO)).await.unwrap();
    let state = async |wait_ms: i32| -> String {
        pg.query_one("SELECT skiplock.mark_advance('default', false, $1)", &[&wait_ms]).await.unwrap().get(0)
    };
    assert_eq!(state(0).await, "moved");
    let mut other = t.sql().await;
    let tx = other.transaction().await.unwrap();
    tx.execute("INSERT INTO skiplock.jobs (kind, run_at) VALUES ('m', now() - interval '1 day')", &[]).await.unwrap();
    assert_eq!(state(0).await, "busy");
    assert_eq!(state(20).await, "busy", "waited 20 ms, then gave up");
    let lock_timeout: String = pg.query_one("SHOW lock_timeout", &[]).await.unwrap().get(0);
    assert_eq!(lock_timeout, "0", "the wait's timeout stays inside the advance");
    tx.commit().await.unwrap();
    assert_eq!(below_mark(&pg, "default").await, 0, "the enqueue lowered the mark");
    assert_ne!(state(20).await, "busy", "the lock is free once the enqueue committed");
    assert_eq!(below_mark(&pg, "default").await, 0, "the advance did not pass the new job");
    assert_eq!(t.client.claim("default", 10, LEASE, "w").await.unwrap().len(), 2);
}

/// Enqueues that never leave the queue's lock free (a relay: each one
/// commits only once the next holds the lock, as back-to-back enqueues from
/// a busy service do) would starve a try-lock forever. A worker's advance
/// that found the lock held for a while waits for it instead: the holder
/// in flight commits, the next enqueue queues behind the advance, and the
/// marks move.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_worker_advances_the_marks_even_while_enqueues_never_leave_the_lock_free() {
    let t = fresh().await;
    let q = "relay";
    let stop = Arc::new(AtomicBool::new(false));
    // Two enqueuers taking turns: each holds its transaction open (and the
    // lock, taken by its insert's trigger) until the other has inserted,
    // or 5 ms have passed (the other waits behind an advance: shorter than
    // the advance's wait, as an enqueue's commit is).
    let counts = Arc::new([AtomicI64::new(0), AtomicI64::new(0)]);
    let mut relay = Vec::new();
    for me in 0..2 {
        let (mut pg, stop, counts) = (t.sql().await, stop.clone(), counts.clone());
        relay.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let tx = pg.transaction().await.unwrap();
                tx.execute("INSERT INTO skiplock.jobs (queue, kind) VALUES ('relay', 'm')", &[]).await.unwrap();
                counts[me].fetch_add(1, Ordering::SeqCst);
                let theirs = counts[1 - me].load(Ordering::SeqCst);
                for _ in 0..5 {
                    if counts[1 - me].load(Ordering::SeqCst) != theirs || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                tx.commit().await.unwrap();
            }
        }));
    }
    let worker = skiplock::Worker::builder(t.client.clone())
        .queue(q, 10)
        .register_any(None, |_args, _ctx| async { Ok(()) })
        .build()
        .unwrap()
        .start();
    let pg = t.sql().await;
    let newest = async || -> Option<i64> {
        pg.query_one("SELECT max(seq) FROM skiplock.queue_marks WHERE queue = $1 AND is_advance", &[&q])
            .await
            .unwrap()
            .get(0)
    };
    // The worker's first pass (the repair) writes one; then three more.
    let (mut last, mut moves) = (newest().await, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while moves < 4 {
        assert!(std::time::Instant::now() < deadline, "the marks moved {moves} times in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = newest().await;
        if now != last {
            (last, moves) = (now, moves + 1);
        }
    }
    stop.store(true, Ordering::SeqCst);
    for r in relay {
        r.await.unwrap();
    }
    worker.shutdown().await;
    assert_eq!(below_mark(&pg, q).await, 0);
}
