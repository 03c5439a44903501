//! The parameters of the insert statements (`job/insert*.sql`, the COPY)
//! and their result: jobs laid out as column arrays, and what an insert
//! did. Every insert statement's Rust takes a [`Columns`] and returns an
//! [`InsertOutcome`].

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::job::Enqueued;

/// Jobs laid out as the column arrays of `insert.sql`.
#[derive(Default, Clone)]
pub(crate) struct Columns {
    pub queue: Vec<String>,
    pub kind: Vec<String>,
    pub args: Vec<Box<RawValue>>,
    pub priority: Vec<i16>,
    pub run_at: Vec<Option<DateTime<Utc>>>,
    pub delay_ms: Vec<Option<i64>>,
    pub max_attempts: Vec<i32>,
    pub unique_key: Vec<Option<String>>,
    /// Each job's tags (sent as a JSON array per job to the multi-row
    /// statements, whose arrays cannot be jagged).
    pub tags: Vec<Vec<String>>,
    pub meta: Vec<String>,
    pub timeout_ms: Vec<Option<i32>>,
    pub unique_args: Vec<bool>,
    pub unique_period_s: Vec<Option<i64>>,
    /// Final states that also hold the key, as a text array literal
    /// (`{completed}`); `None` for the unfinished ones only.
    pub unique_final: Vec<Option<String>>,
}

impl Columns {
    /// A job's tags as the JSON array the multi-row statements take (`None`
    /// for none).
    pub fn tags_json(&self) -> Vec<Option<String>> {
        self.tags
            .iter()
            .map(|t| (!t.is_empty()).then(|| serde_json::to_string(t).expect("strings serialize")))
            .collect()
    }

    /// The queues that get jobs available at once (no delay, no future
    /// `run_at`): the ones to wake.
    pub fn due_queues(&self) -> Vec<&str> {
        let now = Utc::now();
        let mut out: Vec<&str> = Vec::new();
        for i in 0..self.len() {
            let due = match (self.run_at[i], self.delay_ms[i]) {
                (Some(at), _) => at <= now,
                (None, Some(ms)) => ms <= 0,
                (None, None) => true,
            };
            if due && !out.contains(&self.queue[i].as_str()) {
                out.push(&self.queue[i]);
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.kind.len()
    }

    /// Whether job `i` has a unique key of any kind.
    pub fn has_unique(&self, i: usize) -> bool {
        self.unique_key[i].is_some() || self.unique_args[i]
    }

    /// Moves `other`'s jobs after this one's.
    pub fn append(&mut self, mut other: Columns) {
        self.queue.append(&mut other.queue);
        self.kind.append(&mut other.kind);
        self.args.append(&mut other.args);
        self.priority.append(&mut other.priority);
        self.run_at.append(&mut other.run_at);
        self.delay_ms.append(&mut other.delay_ms);
        self.max_attempts.append(&mut other.max_attempts);
        self.unique_key.append(&mut other.unique_key);
        self.tags.append(&mut other.tags);
        self.meta.append(&mut other.meta);
        self.timeout_ms.append(&mut other.timeout_ms);
        self.unique_args.append(&mut other.unique_args);
        self.unique_period_s.append(&mut other.unique_period_s);
        self.unique_final.append(&mut other.unique_final);
    }

    /// The jobs at `idx`, for asking again about some of them.
    pub fn subset(&self, idx: &[usize]) -> Columns {
        let mut c = Columns::default();
        for &i in idx {
            c.queue.push(self.queue[i].clone());
            c.kind.push(self.kind[i].clone());
            c.args.push(self.args[i].clone());
            c.priority.push(self.priority[i]);
            c.run_at.push(self.run_at[i]);
            c.delay_ms.push(self.delay_ms[i]);
            c.max_attempts.push(self.max_attempts[i]);
            c.unique_key.push(self.unique_key[i].clone());
            c.tags.push(self.tags[i].clone());
            c.meta.push(self.meta[i].clone());
            c.timeout_ms.push(self.timeout_ms[i]);
            c.unique_args.push(self.unique_args[i]);
            c.unique_period_s.push(self.unique_period_s[i]);
            c.unique_final.push(self.unique_final[i].clone());
        }
        c
    }
}

/// What `insert.sql` did: the id drawn for each input row, in order, which
/// of them were inserted, and the (derived) unique keys of those that were
/// not (their keys were taken).
pub(crate) struct InsertOutcome {
    pub ids: Vec<i64>,
    pub inserted: HashSet<i64>,
    pub taken: HashMap<i64, String>,
}

impl InsertOutcome {
    /// From the statement's arrays (NULL arrays are empty).
    pub fn new(ids: Vec<i64>, inserted: Vec<i64>, taken_ids: Vec<i64>, taken_keys: Vec<String>) -> Self {
        InsertOutcome {
            ids,
            inserted: inserted.into_iter().collect(),
            taken: taken_ids.into_iter().zip(taken_keys).collect(),
        }
    }

    /// Unique keys of the rows that were not inserted.
    pub fn taken_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.taken.values().cloned().collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// Each row's result; `None` where the key's holder could not be found
    /// (it finished between the insert and the look-up: insert again).
    pub fn resolve(&self, holders: &HashMap<String, i64>) -> Vec<Option<Enqueued>> {
        self.ids
            .iter()
            .map(|&id| {
                if self.inserted.contains(&id) {
                    Some(Enqueued { id, inserted: true })
                } else {
                    let key = self.taken.get(&id)?;
                    holders.get(key).map(|&id| Enqueued { id, inserted: false })
                }
            })
            .collect()
    }
}
