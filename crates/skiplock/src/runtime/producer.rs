//! One producer per queue: claims batches sized to the free slots and hands
//! each job to an executor.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Event, QueueRt, Shared, WakeSource, executor, sleep_or};

/// Longest pause after a failed claim.
const CLAIM_RETRY_MAX: Duration = Duration::from_secs(5);

pub(crate) async fn run(sh: Arc<Shared>, q: Arc<QueueRt>) {
    let cfg = &sh.cfg;
    let mut idle = cfg.poll_interval;
    let mut retry = Duration::from_millis(50);
    loop {
        // Wait for one free slot, then take every other free one: the claim
        // asks for exactly what can start now, never more.
        let mut permit = tokio::select! {
            p = q.slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            _ = sh.fetch_stop.cancelled() => return,
        };
        let extra = q.slots.available_permits().min(cfg.claim_batch_max - 1);
        if extra > 0
            && let Ok(more) = q.slots.clone().try_acquire_many_owned(extra as u32)
        {
            permit.merge(more);
        }
        let want = permit.num_permits();
        let sent = Instant::now();
        match sh.client.claim(&q.name, want as i64, cfg.lease, &cfg.worker_id).await {
            Ok(jobs) => {
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
                if got == want {
                    // A full batch: there is likely more; claim again as soon
                    // as slots free up.
                    idle = cfg.poll_interval;
                    continue;
                }
                if got > 0 {
                    idle = cfg.poll_interval;
                }
            }
            Err(e) => {
                drop(permit);
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
        let wait = if sh.listening.load(Ordering::Relaxed) { idle } else { cfg.poll_interval };
        let source = tokio::select! {
            _ = q.wake.notified() => {
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
