//! Rate-limits the NOTIFYs an enqueue sends. A transaction that NOTIFYs
//! takes a cluster-wide lock at commit and holds it through its WAL flush,
//! so notifying commits run one at a time: on the development machine 16
//! clients inserting one job per transaction made 7,600 commits/s without
//! NOTIFY and 1,800 with it. So each client wakes a queue at most once per
//! interval: the first enqueue notifies at once (leading edge); later ones
//! within the interval are covered by one NOTIFY sent when it ends
//! (trailing edge), so no job waits longer than the interval for its
//! wake-up, and workers' polling covers the rest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default shortest time between two NOTIFYs for one queue from one client:
/// 2 ms.
pub const NOTIFY_INTERVAL_DEFAULT: Duration = Duration::from_millis(2);

#[derive(Debug, Default)]
struct QueueWake {
    last: Option<Instant>,
    trailing: bool,
}

/// Queues remembered before the bookkeeping forgets the idle ones.
const REMEMBERED_MAX: usize = 1024;

/// Per-queue NOTIFY bookkeeping of one client. Bounded: past
/// [`REMEMBERED_MAX`] queues, those whose interval is over and that await
/// no trailing NOTIFY are forgotten (forgetting them changes nothing: their
/// next enqueue notifies at once, as it would anyway).
#[derive(Debug)]
pub(crate) struct Wakeups {
    interval: Duration,
    queues: Mutex<HashMap<String, QueueWake>>,
}

impl Wakeups {
    pub fn new(interval: Duration) -> Self {
        Wakeups { interval, queues: Mutex::new(HashMap::new()) }
    }

    /// Splits `queues` into those to notify now (their interval has passed;
    /// marked as notified) and those whose trailing NOTIFY must be scheduled
    /// (with when it is due). Queues already awaiting a trailing NOTIFY are
    /// in neither.
    pub fn decide<'a>(&self, queues: impl IntoIterator<Item = &'a str>) -> (Vec<String>, Vec<(String, Instant)>) {
        let now = Instant::now();
        let mut map = self.queues.lock().expect("not poisoned");
        if map.len() > REMEMBERED_MAX {
            let interval = self.interval;
            map.retain(|_, w| w.trailing || w.last.is_some_and(|last| now < last + interval));
        }
        let (mut at_once, mut later) = (Vec::new(), Vec::new());
        for q in queues {
            let w = map.entry(q.to_owned()).or_default();
            match w.last {
                Some(last) if now < last + self.interval => {
                    if !w.trailing {
                        w.trailing = true;
                        later.push((q.to_owned(), last + self.interval));
                    }
                }
                _ => {
                    w.last = Some(now);
                    at_once.push(q.to_owned());
                }
            }
        }
        (at_once, later)
    }

    /// Records that a trailing NOTIFY for `queue` was sent.
    pub fn trailing_sent(&self, queue: &str) {
        let mut map = self.queues.lock().expect("not poisoned");
        let w = map.entry(queue.to_owned()).or_default();
        w.trailing = false;
        w.last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_enqueue_notifies_and_the_rest_wait_for_one_trailing_notify() {
        let w = Wakeups::new(Duration::from_secs(3600));
        let (now, later) = w.decide(["a", "b"]);
        assert_eq!(now, vec!["a", "b"]);
        assert!(later.is_empty());
        let (now, later) = w.decide(["a"]);
        assert!(now.is_empty());
        assert_eq!(later.len(), 1, "one trailing notify scheduled");
        let (now, later) = w.decide(["a"]);
        assert!(now.is_empty() && later.is_empty(), "already scheduled");
        w.trailing_sent("a");
        let (now, later) = w.decide(["a"]);
        assert!(now.is_empty() && later.len() == 1, "the interval restarts at the trailing notify");
    }

    #[test]
    fn idle_queues_are_forgotten_past_the_bound() {
        let w = Wakeups::new(Duration::ZERO);
        for i in 0..3 * REMEMBERED_MAX {
            w.decide([format!("q{i}").as_str()]);
        }
        assert!(w.queues.lock().unwrap().len() <= REMEMBERED_MAX + 1);
    }

    #[test]
    fn a_zero_interval_always_notifies() {
        let w = Wakeups::new(Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(w.decide(["q"]).0, vec!["q"]);
        }
    }
}
