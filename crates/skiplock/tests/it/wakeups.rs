//! Enqueue wake-ups are rate limited per queue: a burst of enqueues sends a
//! leading NOTIFY and one trailing NOTIFY, not one per job.

use std::time::Duration;

use futures_util::StreamExt as _;
use skiplock::{EnqueueOptions, NewJob};
use tokio_postgres::AsyncMessage;

use crate::support::{TestDb, fresh_with};

/// A connection listening on the insert channel, and the payloads (queue
/// names) of the notifications it receives.
async fn listen(t: &TestDb) -> (tokio_postgres::Client, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let (listener, mut conn) = tokio_postgres::connect(t.db.url(), tokio_postgres::NoTls).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(Ok(m)) = stream.next().await {
            if let AsyncMessage::Notification(n) = m {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    listener.batch_execute("LISTEN skiplock_insert").await.unwrap();
    (listener, rx)
}

#[tokio::test]
async fn a_burst_of_enqueues_sends_a_leading_and_a_trailing_notify() {
    let t = fresh_with(|b| b.notify_interval(Duration::from_millis(300))).await;
    let (listener, mut rx) = listen(&t).await;

    for i in 0..40 {
        t.client.enqueue_job(NewJob::new("k", &i, EnqueueOptions::new().queue("burst")).unwrap()).await.unwrap();
    }
    // The leading notify came with the first job; the trailing one comes
    // when the interval ends. Wait for both.
    for _ in 0..2 {
        let q = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
        assert_eq!(q, "burst");
    }
    let extra = std::iter::from_fn(|| rx.try_recv().ok()).count();
    // 40 enqueues take well under the interval here; on a slow machine a
    // few more intervals may pass, each with at most one more notify.
    assert!(extra <= 8, "{extra} more notifies for 40 enqueues");
    assert_eq!(t.count("jobs", "queue = 'burst'").await, 40);
    drop(listener);
}

#[tokio::test]
async fn scheduled_jobs_wake_no_one() {
    let t = fresh_with(|b| b.notify_interval(Duration::ZERO)).await;
    let (_listener, mut rx) = listen(&t).await;
    let later = EnqueueOptions::new().queue("later").delay(Duration::from_secs(600));
    t.client.enqueue_job(NewJob::new("k", &1, later).unwrap()).await.unwrap();
    t.client.enqueue_job(NewJob::new("k", &2, EnqueueOptions::new().queue("now")).unwrap()).await.unwrap();
    let q = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.unwrap().unwrap();
    assert_eq!(q, "now", "the scheduled job sent no wake-up before it");
}
