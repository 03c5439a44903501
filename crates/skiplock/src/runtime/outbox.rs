//! Outcomes waiting to be written. Executors put them here; producers take
//! them along with their next claim (one statement, one commit for both);
//! the completer writes what no producer took within a moment.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, Semaphore};

use super::Done;

pub(crate) struct Outbox {
    items: Mutex<Vec<Done>>,
    /// Wakes the completer when the outbox stops being empty.
    ready: Notify,
    /// Room for outcomes not yet written. Executors wait for room when the
    /// database falls behind, holding their slots, which slows claiming:
    /// backpressure, never loss.
    room: Semaphore,
    /// Producers claiming back to back right now: while there are any, the
    /// completer leaves outcomes for them to carry.
    busy_producers: AtomicUsize,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Outbox {
            items: Mutex::new(Vec::new()),
            ready: Notify::new(),
            room: Semaphore::new(capacity),
            busy_producers: AtomicUsize::new(0),
        }
    }

    /// Adds an outcome, waiting for room if the outbox is full.
    pub async fn push(&self, done: Done) {
        self.room.acquire().await.expect("the semaphore is never closed").forget();
        let first = {
            let mut items = self.items.lock().expect("not poisoned");
            items.push(done);
            items.len() == 1
        };
        if first {
            self.ready.notify_one();
        }
    }

    /// Takes up to `max` outcomes, oldest first.
    pub fn take(&self, max: usize) -> Vec<Done> {
        let mut items = self.items.lock().expect("not poisoned");
        if items.len() <= max { std::mem::take(&mut *items) } else { items.drain(..max).collect() }
    }

    /// Returns outcomes that could not be written (they go first next time).
    pub fn put_back(&self, mut batch: Vec<Done>) {
        {
            let mut items = self.items.lock().expect("not poisoned");
            batch.append(&mut items);
            *items = batch;
        }
        self.ready.notify_one();
    }

    /// Frees the room of `n` outcomes that were written.
    pub fn written(&self, n: usize) {
        self.room.add_permits(n);
    }

    pub fn is_empty(&self) -> bool {
        self.items.lock().expect("not poisoned").is_empty()
    }

    /// Resolves when outcomes arrive (at once if some arrived unnoticed).
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    pub fn set_busy(&self, busy: bool) {
        if busy {
            self.busy_producers.fetch_add(1, Ordering::Relaxed);
        } else {
            self.busy_producers.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn producers_busy(&self) -> bool {
        self.busy_producers.load(Ordering::Relaxed) > 0
    }
}
