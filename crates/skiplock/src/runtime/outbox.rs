//! Outcomes waiting to be written. Executors put them here; producers take
//! them along with their next claim (one statement, one commit for both);
//! the completer writes what no producer took within a moment.
//!
//! Taking outcomes hands out a [`Batch`]: it puts its outcomes back (at the
//! front) when dropped unless it was marked written, so an outcome is never
//! lost on the way, whether its statement failed, its task panicked or was
//! cancelled.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, Semaphore};

use super::queue::Done;

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
    pub async fn push(&self, mut done: Done) {
        self.room.acquire().await.expect("the semaphore is never closed").forget();
        done.holds_room = true;
        self.add(done);
    }

    /// Adds an outcome at once, with room if there is some and without
    /// otherwise: for a drop guard, which cannot wait.
    pub fn push_now(&self, mut done: Done) {
        done.holds_room = match self.room.try_acquire() {
            Ok(permit) => {
                permit.forget();
                true
            }
            Err(_) => false,
        };
        self.add(done);
    }

    fn add(&self, done: Done) {
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
    pub fn take(self: &Arc<Self>, max: usize) -> Batch {
        let mut items = self.items.lock().expect("not poisoned");
        let taken = if items.len() <= max { std::mem::take(&mut *items) } else { items.drain(..max).collect() };
        Batch { outbox: self.clone(), items: taken }
    }

    /// Returns outcomes that could not be written (they go first next time).
    fn put_back(&self, mut batch: Vec<Done>) {
        if batch.is_empty() {
            return;
        }
        {
            let mut items = self.items.lock().expect("not poisoned");
            batch.append(&mut items);
            *items = batch;
        }
        self.ready.notify_one();
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

/// Outcomes taken from the outbox: back in it when dropped, unless
/// [`Batch::done`] says they were dealt with.
pub(crate) struct Batch {
    outbox: Arc<Outbox>,
    items: Vec<Done>,
}

impl Batch {
    /// One batch per outcome (to find the one the database refuses).
    pub fn split(mut self) -> Vec<Batch> {
        let items = std::mem::take(&mut self.items);
        items.into_iter().map(|d| Batch { outbox: self.outbox.clone(), items: vec![d] }).collect()
    }

    /// The statement carrying these outcomes lost its answer: it may have
    /// written them, so a "stale" when they are sent again is no news.
    pub fn mark_resent(&mut self) {
        for d in &mut self.items {
            d.resent = true;
        }
    }

    /// Error texts made plain ASCII (escapes for the rest), for a database
    /// whose encoding refused them.
    pub fn plain_errors(&mut self) {
        use crate::job::Outcome;
        let plain = |s: &mut String| *s = s.escape_default().to_string();
        for d in &mut self.items {
            match &mut d.outcome {
                Outcome::Failed { error, .. } | Outcome::Discarded(error) | Outcome::Cancelled(Some(error)) => {
                    plain(error)
                }
                _ => {}
            }
        }
    }

    /// The outcomes were written, found stale or given up: frees their room.
    pub fn done(mut self) {
        let room = self.items.iter().filter(|d| d.holds_room).count();
        self.items.clear();
        self.outbox.room.add_permits(room);
    }
}

impl Deref for Batch {
    type Target = [Done];
    fn deref(&self) -> &[Done] {
        &self.items
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.outbox.put_back(std::mem::take(&mut self.items));
    }
}
