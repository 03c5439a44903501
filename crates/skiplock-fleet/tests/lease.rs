//! The worker's side of "no job runs in two places at once while its lease
//! holds", and the leader's side of "one stuck pass never stops the fleet's
//! maintenance", with the network broken by the proxy: an in-process
//! `Worker` (or `Maintenance`) reaches the server through it, while the test
//! looks at the database directly.

mod common;

use std::time::{Duration, Instant};

use common::{fresh, poll};
use skiplock::{
    CancelReason, Client, EnqueueOptions, Event, JobError, JobState, Maintenance, Missed, NewJob, PeriodicJob, Worker,
};
use skiplock_fleet::Proxy;
use skiplock_fleet::faults::connect;

/// Waits (at most 30 s) for an event matching `pred`.
async fn next(rx: &mut tokio::sync::broadcast::Receiver<Event>, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(ev)) if pred(&ev) => return ev,
            Ok(Ok(_)) => {}
            other => panic!("no matching event: {other:?}"),
        }
    }
}

/// A worker whose heartbeats stop reaching the server (the proxy drops its
/// connections and refuses new ones) stops its handler before the lease
/// runs out: three quarters of a lease after the last heartbeat was sent,
/// by its own clock, while the database still says the lease holds. The
/// handler, which waits for cancellation, is told why (the lease); its
/// attempt is released (not counted) once the worker reaches the server
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_whose_lease_cannot_be_confirmed_is_stopped_before_the_lease_runs_out() {
    let db = fresh().await;
    let proxy = Proxy::in_front_of(db.url()).await.unwrap();
    let lease = Duration::from_secs(2);
    let client = Client::builder(proxy.url(db.url()))
        .statement_timeout(Some(Duration::from_millis(500)))
        .pool_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let (stopped_tx, mut stopped_rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::builder(client)
        .queue("default", 1)
        .lease(lease)
        .maintenance(false)
        .register_raw("waits", None, move |_args, ctx| {
            let stopped = stopped_tx.clone();
            async move {
                ctx.cancelled().await;
                stopped.send((Instant::now(), ctx.cancel_reason())).unwrap();
                Err(JobError::retry("told to stop"))
            }
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let direct = Client::connect(db.url()).unwrap();
    let id = direct.enqueue_job(NewJob::new("waits", &(), EnqueueOptions::new()).unwrap()).await.unwrap().id;
    let handle = worker.start();
    next(&mut events, |e| matches!(e, Event::Started { .. })).await;
    next(&mut events, |e| matches!(e, Event::Heartbeat { extended: 1, .. })).await;
    // Right after a heartbeat's answer: cut the worker off.
    let cut = Instant::now();
    proxy.set_refusing(true);
    proxy.drop_all();
    let ev =
        next(&mut events, |e| matches!(e, Event::CancelRequested { .. } | Event::Heartbeat { extended: 1, .. })).await;
    assert_eq!(ev, Event::CancelRequested { id, reason: CancelReason::LeaseLost });
    let (at, reason) = stopped_rx.recv().await.unwrap();
    assert_eq!(reason, Some(CancelReason::LeaseLost));
    // The database, asked directly: the lease still held when the handler
    // stopped, so the rescuer could not yet have given the job to anyone.
    let pg = connect(db.url()).await.unwrap();
    let left: f64 = pg
        .query_one("SELECT extract(epoch FROM lease_expires_at - clock_timestamp())::float8 FROM skiplock.jobs", &[])
        .await
        .unwrap()
        .get(0);
    let since_cut = at - cut;
    assert!(left > 0.0, "the handler stopped {:.3}s after its lease ran out", -left);
    // Three quarters of a lease after the last heartbeat was sent (before
    // `cut`), checked every twentieth of a lease.
    assert!(
        since_cut <= lease * 3 / 4 + lease / 20 + Duration::from_millis(250),
        "stopped {since_cut:?} after the cut"
    );
    assert!(since_cut >= lease * 3 / 4 - lease / 3, "stopped {since_cut:?} after the cut: too early");
    // Back online: the attempt is released, not counted.
    proxy.set_refusing(false);
    let ev = next(&mut events, |e| matches!(e, Event::Finished { .. } | Event::Stale { .. })).await;
    assert_eq!(ev, Event::Finished { id, state: JobState::Available, error: None });
    handle.shutdown().await;
    let row = direct.job(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempt), (JobState::Available, 0));
}

/// A leader whose connection stalls in the middle of a pass (a host cut
/// off, a half-open connection) holds the leader row locked only as long as
/// its pass's own limits allow: the server ends the stuck transaction, and
/// another process takes over within a few leases and runs the maintenance,
/// instead of waiting for the server's TCP keepalive (two hours by default).
/// The pass is made long (ten periodic jobs, each a thousand runs behind,
/// back-filled), and the network stalls a moment after it began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_mid_pass_is_replaced_within_a_few_leases() {
    let db = fresh().await;
    let pg = connect(db.url()).await.unwrap();
    let proxy = Proxy::in_front_of(db.url()).await.unwrap();
    let lease = Duration::from_secs(1);
    let mut builder =
        Maintenance::builder(Client::connect(&proxy.url(db.url())).unwrap()).id("stuck").leader_lease(lease);
    for i in 0..10 {
        let name = format!("p{i}");
        pg.execute(
            "INSERT INTO skiplock.periodic (name, schedule, next_run_at) VALUES ($1, 'every 1000ms', now() - interval '1000 seconds')",
            &[&name],
        )
        .await
        .unwrap();
        let job = NewJob::new("tick", &(), EnqueueOptions::new()).unwrap();
        builder =
            builder.periodic(PeriodicJob::every(name, Duration::from_secs(1)).missed(Missed::RunAll).new_job(job));
    }
    let stuck = builder.build().unwrap();
    assert!(stuck.elect().await.unwrap());
    let pass = tokio::spawn({
        let stuck = stuck.clone();
        async move { stuck.periodic_once().await }
    });
    // Mid-pass: its transaction began (it holds the leader row).
    poll("the pass to begin", Duration::from_millis(5), Duration::from_secs(10), || {
        let pg = &pg;
        async move {
            let n: i64 = pg
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
                       AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            (n > 0).then_some(())
        }
    })
    .await;
    proxy.set_stalled(true);
    let stalled_at = Instant::now();
    let next_leader =
        Maintenance::builder(Client::connect(db.url()).unwrap()).id("next").leader_lease(lease).build().unwrap();
    let took = poll("another process to take over", Duration::from_millis(50), Duration::from_secs(60), || {
        let m = next_leader.clone();
        async move { m.elect().await.ok().filter(|won| *won).map(|_| Instant::now()) }
    })
    .await;
    let waited = took - stalled_at;
    // At most: the lease runs out (1), the stuck pass's limits end it (2),
    // or, if it stalled halfway through sending a message, the election
    // ends it after 3 more (see the next test): 5, and room for a slow
    // machine.
    assert!(waited < lease * 8, "took over {waited:?} after the stall (lease {lease:?})");
    // The new leader's passes run, and the stuck pass left nothing behind
    // (its transaction was rolled back: no run of it was enqueued).
    assert!(next_leader.periodic_once().await.unwrap().is_some());
    let stuck_backends: i64 = pg
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND (wait_event_type = 'Lock' OR state LIKE 'idle in transaction%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(stuck_backends, 0, "no backend is left waiting or idle in a transaction");
    proxy.set_stalled(false);
    let out = pass.await.unwrap();
    assert!(out.is_err(), "the stuck pass failed: {out:?}");
}

/// A session that holds the leader row in a state no server timeout ends
/// (here a COPY waiting for data its client never sends: PostgreSQL ignores
/// the statement timeout while it waits for its client mid-message, and the
/// idle-in-transaction timeout is not armed, as for a leader stopped
/// halfway through sending a statement) is ended by the next election once
/// it has been kept waiting for longer than any pass may last; that process
/// then leads, and the stuck transaction left nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_stuck_where_no_server_timeout_reaches_is_ended_by_the_next_election() {
    let db = fresh().await;
    let lease = Duration::from_secs(1);
    let old = Maintenance::builder(Client::connect(db.url()).unwrap()).id("old").leader_lease(lease).build().unwrap();
    assert!(old.elect().await.unwrap());
    let mut stuck = connect(db.url()).await.unwrap();
    let tx = stuck.transaction().await.unwrap();
    tx.batch_execute(
        "SET LOCAL statement_timeout = '1s'; SET LOCAL idle_in_transaction_session_timeout = '1s';
         CREATE TEMP TABLE sink (a int) ON COMMIT DROP",
    )
    .await
    .unwrap();
    let held = tx.query("SELECT skiplock.leader_guard('old')", &[]).await.unwrap();
    assert_eq!(held.len(), 1, "the old leader's pass holds the leader row");
    let stuck_pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    // The COPY starts; no byte of its data ever comes.
    let sink = tx.copy_in::<_, &'static [u8]>("COPY sink FROM STDIN").await.unwrap();
    let pg = connect(db.url()).await.unwrap();
    let started = Instant::now();
    let next = Maintenance::builder(Client::connect(db.url()).unwrap()).id("next").leader_lease(lease).build().unwrap();
    let took = poll("the next process to take over", Duration::from_millis(50), Duration::from_secs(60), || {
        let m = next.clone();
        async move { m.elect().await.ok().filter(|won| *won).map(|_| Instant::now()) }
    })
    .await;
    let waited = took - started;
    // Its lease ran out (1), the election waited 3 more, then ended it.
    assert!(waited >= lease * 3, "it waited for longer than any pass may last, not {waited:?}");
    assert!(waited < lease * 8, "took over {waited:?} after the pass got stuck (lease {lease:?})");
    let alive: i64 =
        pg.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&stuck_pid]).await.unwrap().get(0);
    assert_eq!(alive, 0, "the stuck session was ended");
    assert!(next.periodic_once().await.is_ok());
    drop(sink);
}

/// Review S4: a LISTEN connection whose path went quiet (stalled, as a
/// half-open connection is) is noticed within two of the longest poll
/// intervals, not after the kernel's keepalive of two hours: the worker
/// says the listener is lost, polls meanwhile, and listens again once the
/// path is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_connection_gone_quiet_is_noticed_and_replaced() {
    let db = fresh().await;
    let proxy = Proxy::in_front_of(db.url()).await.unwrap();
    let worker = Worker::builder(Client::connect(db.url()).unwrap())
        .queue("default", 1)
        .poll_interval(Duration::from_millis(200), Duration::from_secs(1))
        .listen(skiplock::Listen::Url(proxy.url(db.url())))
        .register_raw("k", None, |_args, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let handle = worker.start();
    next(&mut events, |e| matches!(e, Event::ListenerConnected)).await;
    proxy.set_stalled(true);
    let stalled = Instant::now();
    let ev = next(&mut events, |e| matches!(e, Event::ListenerLost { .. })).await;
    let noticed = stalled.elapsed();
    assert!(noticed < Duration::from_secs(4), "noticed {noticed:?} after the stall: {ev:?}");
    proxy.set_stalled(false);
    next(&mut events, |e| matches!(e, Event::ListenerConnected)).await;
    handle.shutdown().await;
}
