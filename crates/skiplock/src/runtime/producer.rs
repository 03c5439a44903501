//! Producers: claim batches sized to the free slots, hand each job to an
//! executor, and carry waiting outcomes along in the same statement.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Event, QueueRt, Shared, WakeSource, completer, executor, sleep_or};

/// Longest wait for more free slots before claiming on a busy queue.
const GATHER: Duration = Duration::from_millis(1);
/// Longest pause after a failed claim.
const CLAIM_RETRY_MAX: Duration = Duration::from_secs(5);

/// Producer `me` of queue `q`. Producers of one queue share its slots; each
/// claims at most its share, so two claims can be in flight at once.
pub(crate) async fn run(sh: Arc<Shared>, q: Arc<QueueRt>, me: usize) {
    let cfg = &sh.cfg;
    let cap = q.claim_cap(cfg.claim_batch_max);
    let waker = &q.wakers[me];
    let sibling = &q.wakers[(me + 1) % q.wakers.len()];
    let mut idle = cfg.poll_interval;
    let mut retry = Duration::from_millis(50);
    let mut busy = Busy::new(&sh);
    let mut last_full = false;
    loop {
        // Wait for one free slot, then take every other free one: the claim
        // asks for exactly what can start now, never more.
        let mut permit = tokio::select! {
            p = q.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = sh.fetch_stop.cancelled() => return,
        };
        let extra = q.slots.available_permits().min(cap - 1);
        if extra > 0
            && let Ok(more) = q.slots.clone().try_acquire_many_owned(extra as u32)
        {
            permit.merge(more);
        }
        // Busy queue, few free slots: the jobs just started are likely about
        // to finish. Wait a moment for half a batch rather than send a
        // nearly empty claim (each costs a commit).
        let half = cap / 2;
        if last_full && permit.num_permits() < half {
            let need = (half - permit.num_permits()) as u32;
            if let Ok(Ok(more)) = tokio::time::timeout(GATHER, q.slots.clone().acquire_many_owned(need)).await {
                permit.merge(more);
            }
        }
        let want = permit.num_permits();
        busy.set(true);
        // Outcomes waiting in the outbox ride along: one statement, one
        // commit, for the outcomes and the next claim.
        let done = sh.outbox.take(cfg.complete_batch_max);
        let sent = Instant::now();
        let result = sh
            .client
            .finish_and_claim(
                &completer::finishes(&done),
                cfg.keep_completed,
                &q.name,
                want as i64,
                cfg.lease,
                &cfg.worker_id,
            )
            .await;
        match result {
            Ok((report, jobs)) => {
                if !done.is_empty() {
                    completer::record(&sh, &done, &report);
                }
                retry = Duration::from_millis(50);
                let got = jobs.len();
                if got > 0 {
                    q.metrics.claimed.increment(got as u64);
                    sh.emit(Event::Claimed { queue: q.name.clone(), count: got });
                    for job in jobs {
                        let slot = permit.split(1).expect("one permit per claimed job");
                        let task = executor::run(sh.clone(), q.clone(), job, slot, sent);
                        sh.tracker.spawn(task);
                    }
                }
                drop(permit);
                last_full = got == want;
                if got == want {
                    // A full batch: there is likely more. Claim again as soon
                    // as slots free up, and get the sibling producer going.
                    idle = cfg.poll_interval;
                    if !std::ptr::eq(waker, sibling) {
                        sibling.notify_one();
                    }
                    continue;
                }
                if got > 0 {
                    idle = cfg.poll_interval;
                }
            }
            Err(e) => {
                drop(permit);
                if !done.is_empty() {
                    sh.outbox.put_back(done);
                }
                busy.set(false);
                tracing::warn!(queue = %q.name, error = %e, "claim failed; retrying");
                if !sleep_or(&sh.fetch_stop, retry).await {
                    return;
                }
                retry = (retry * 2).min(CLAIM_RETRY_MAX);
                continue;
            }
        }
        // The queue looked empty: wait for a NOTIFY or the poll interval.
        // Without a LISTEN connection, poll at the shortest interval.
        busy.set(false);
        let wait = if sh.listening.load(Ordering::Relaxed) { idle } else { cfg.poll_interval };
        let source = tokio::select! {
            _ = waker.notified() => {
                idle = cfg.poll_interval;
                match q.wake_source.swap(WakeSource::Notify as u8, Ordering::Relaxed) {
                    s if s == WakeSource::Reconnect as u8 => WakeSource::Reconnect,
                    _ => WakeSource::Notify,
                }
            }
            _ = tokio::time::sleep(wait) => {
                idle = (idle * 2).min(cfg.poll_interval_max);
                WakeSource::Poll
            }
            _ = sh.fetch_stop.cancelled() => return,
        };
        sh.emit(Event::Woken { queue: q.name.clone(), source });
    }
}

/// Whether this producer counts as claiming back to back (the completer
/// then leaves outcomes for it to carry); cleared when it stops.
struct Busy<'a> {
    sh: &'a Shared,
    on: bool,
}

impl<'a> Busy<'a> {
    fn new(sh: &'a Shared) -> Self {
        Busy { sh, on: false }
    }

    fn set(&mut self, on: bool) {
        if on != self.on {
            self.sh.outbox.set_busy(on);
            self.on = on;
        }
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}
