//! Failures are visible by default: one WARN line per failed attempt that
//! runs again (kind, id, attempt, error, when), one ERROR per discard, with
//! the error text (without credentials) in the events too.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiplock::{Backoff, EnqueueOptions, Event, JobError, JobState};

use super::*;
use crate::support::{fresh, wait_for};

#[derive(Serialize, Deserialize)]
struct Flaky;
impl Job for Flaky {
    const KIND: &'static str = "flaky";
    const MAX_ATTEMPTS: i32 = 2;
}

/// Everything the fmt layer writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// A fmt subscriber at INFO writing here, for this thread (the test's
    /// runtime is single-threaded) until the guard is dropped.
    fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
        let captured = Captured::default();
        let out = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || out.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().map(str::to_owned).collect()
    }
}

// One thread, so that the subscriber set for this test sees every task.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_attempt_warns_and_a_discard_is_an_error_with_the_error_text() {
    let (captured, _default) = Captured::install();

    let t = fresh().await;
    let worker = builder(&t)
        .queue("default", 1)
        .maintenance(false)
        .backoff(Backoff::Custom(Arc::new(|_| Duration::ZERO)))
        .register::<Flaky, _, _>(|_job, ctx| async move {
            Err(JobError::retry(format!("upstream said no (attempt {}, password=hunter2)", ctx.attempt())))
        })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    let id = t.client.enqueue(&Flaky, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    let first = wait_for(&mut events, |e| matches!(e, Event::Finished { .. })).await;
    let last = wait_for(&mut events, |e| matches!(e, Event::Finished { state, .. } if state.is_final())).await;
    handle.shutdown().await;

    let Event::Finished { state: JobState::Available, error: Some(first_error), .. } = first else {
        panic!("the first attempt runs again at once: {first:?}")
    };
    assert!(first_error.contains("upstream said no (attempt 1"), "{first_error}");
    assert!(!first_error.contains("hunter2"), "no secret in the event: {first_error}");
    let Event::Finished { state: JobState::Discarded, error: Some(last_error), .. } = last else {
        panic!("the second attempt is the last: {last:?}")
    };
    assert!(last_error.contains("attempt 2"), "{last_error}");

    let lines = captured.lines();
    let about = |level: &str, words: &str| -> Vec<String> {
        lines.iter().filter(|l| l.contains(level) && l.contains(words)).cloned().collect()
    };
    let warns = about("WARN", "job attempt failed; it runs again later");
    assert_eq!(warns.len(), 1, "one WARN per failed attempt that runs again: {lines:#?}");
    assert!(warns[0].contains("skiplock::jobs"), "under the target operators filter by: {}", warns[0]);
    for field in
        [&format!("id={id}") as &str, "kind=\"flaky\"", "attempt=1", "upstream said no", "runs_at=", "retry_in="]
    {
        assert!(warns[0].contains(field), "{field} in {}", warns[0]);
    }
    let errors = about("ERROR", "job discarded: its last attempt failed");
    assert_eq!(errors.len(), 1, "one ERROR per discard: {lines:#?}");
    assert!(errors[0].contains("attempt=2") && errors[0].contains(&format!("id={id}")), "{}", errors[0]);
    assert!(lines.iter().all(|l| !l.contains("hunter2")), "no secret in the log: {lines:#?}");
}

#[derive(Serialize, Deserialize)]
struct Quick;
impl Job for Quick {
    const KIND: &'static str = "quick";
}

/// On a database whose archive days were not made ahead, an outcome written
/// while the leader makes today's table is refused once by PostgreSQL (it
/// routed the row to the default partition before waiting for the lock);
/// the worker writes it again, without a warning.
#[tokio::test(flavor = "current_thread")]
async fn an_outcome_racing_the_first_archive_table_is_written_again_without_a_warning() {
    let (captured, _default) = Captured::install();

    let t = fresh().await;
    let worker = builder(&t)
        .queue("default", 1)
        .maintenance(false)
        .register(|_job: Quick, _ctx| async { Ok(()) })
        .build()
        .unwrap();
    let mut events = worker.subscribe();
    // Today's table being made, not yet committed: it holds the default
    // partition's lock.
    let mut ddl = t.sql().await;
    let tx = ddl.transaction().await.unwrap();
    let made: Option<String> =
        tx.query_one("SELECT skiplock.archive_partition_create(current_date)", &[]).await.unwrap().get(0);
    assert!(made.is_some(), "today's table did not exist yet");
    let id = t.client.enqueue(&Quick, EnqueueOptions::new()).await.unwrap().id;
    let handle = worker.start();
    // The outcome's insert waits for that lock...
    t.wait_for_lock_waiter("the outcome waiting for the archive's lock").await;
    // ...and is refused when it commits, then written again.
    tx.commit().await.unwrap();
    let ev = wait_for(&mut events, |e| matches!(e, Event::Finished { .. })).await;
    handle.shutdown().await;
    assert_eq!(ev, Event::Finished { id, state: JobState::Completed, error: None });
    let part: String = t
        .sql()
        .await
        .query_one("SELECT tableoid::regclass::text FROM skiplock.jobs_archive WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert!(part.contains("jobs_archive_p"), "in today's table: {part}");
    let lines = captured.lines();
    assert!(lines.iter().all(|l| !l.contains("WARN") && !l.contains("ERROR")), "no warning: {lines:#?}");
}
