//! How a chunk of jobs is inserted, whichever driver runs it: by COPY or
//! by a multi-row INSERT, in rounds that resolve unique keys taken by jobs
//! which finished in between.

use std::collections::HashMap;

use super::columns::{Columns, InsertOutcome};
use crate::error::{Error, Result};
use crate::job::Enqueued;

/// The rounds of inserting one chunk, whichever driver runs them: insert,
/// look up the holders of the unique keys that were taken, and insert again
/// the rows whose holder finished in between (a rare race; three rounds at
/// most, then [`Error::Duplicate`]).
pub(crate) struct Resolver<'a> {
    cols: &'a Columns,
    result: Vec<Option<Enqueued>>,
    todo: Vec<usize>,
    rounds: u8,
}

impl<'a> Resolver<'a> {
    const ROUNDS: u8 = 3;

    pub fn new(cols: &'a Columns) -> Self {
        Resolver { cols, result: vec![None; cols.len()], todo: (0..cols.len()).collect(), rounds: 0 }
    }

    /// The rows to insert in the next round, or `None` when done.
    pub fn next_round(&mut self) -> Option<std::borrow::Cow<'a, Columns>> {
        if self.todo.is_empty() || self.rounds == Self::ROUNDS {
            return None;
        }
        self.rounds += 1;
        Some(if self.todo.len() == self.cols.len() {
            std::borrow::Cow::Borrowed(self.cols)
        } else {
            std::borrow::Cow::Owned(self.cols.subset(&self.todo))
        })
    }

    /// Records a round: its insert's outcome and the holders of the keys
    /// it found taken.
    pub fn record(&mut self, out: &InsertOutcome, holders: &HashMap<String, i64>) {
        let mut again = Vec::new();
        for (j, r) in out.resolve(holders).into_iter().enumerate() {
            match r {
                Some(e) => self.result[self.todo[j]] = Some(e),
                None => again.push(self.todo[j]),
            }
        }
        self.todo = again;
    }

    /// Every row's result.
    pub fn finish(self) -> Result<Vec<Enqueued>> {
        self.result.into_iter().map(|r| r.ok_or(Error::Duplicate { key: None })).collect()
    }
}

/// Jobs from which a chunk goes through COPY: below, the COPY's three round
/// trips cost more than the multi-row INSERT's one.
pub(crate) const COPY_MIN_JOBS: usize = 100;

/// Whether a chunk goes through COPY: big enough, and no unique keys (COPY
/// cannot resolve their conflicts).
pub(crate) fn use_copy(cols: &Columns) -> bool {
    cols.len() >= COPY_MIN_JOBS && cols.unique_key.iter().all(Option::is_none) && !cols.unique_args.contains(&true)
}

/// Inserts one chunk through `on`: by COPY (on `pg`, the connection under
/// `on`, if given) when it is big and has no unique keys, else with the
/// multi-row INSERT (or the single-row one), then looks up the holders of any unique keys that were
/// taken; a holder that finished in between frees its key, so those rows are
/// inserted again (a rare race; at most thrice). `wake` says, for the rows
/// of each statement, which queues to NOTIFY in it (the caller's rate limit
/// decides).
pub(crate) async fn insert(
    db: &super::Db,
    on: super::On<'_>,
    pg: Option<&tokio_postgres::Client>,
    cols: &Columns,
    wake: &(dyn Fn(&Columns) -> Vec<String> + Sync),
) -> Result<Vec<Enqueued>> {
    if let Some(pg) = pg.filter(|_| use_copy(cols)) {
        let state_type = db.state_type(pg).await?;
        return super::copy::insert(on, pg, cols, &state_type, &wake(cols)).await;
    }
    if !(0..cols.len()).any(|i| cols.has_unique(i)) {
        // No unique keys: the short statements.
        let now = wake(cols);
        let ids = if cols.len() == 1 {
            vec![super::job::insert_one(on, cols, 0, !now.is_empty()).await?]
        } else {
            super::job::insert_plain(on, cols, &now).await?
        };
        return Ok(ids.into_iter().map(|id| Enqueued { id, inserted: true }).collect());
    }
    let mut rounds = Resolver::new(cols);
    while let Some(round) = rounds.next_round() {
        let out = super::job::insert(on, &round, &wake(&round)).await?;
        let keys = out.taken_keys();
        let holders = if keys.is_empty() { HashMap::new() } else { super::job::holders(on, &keys).await? };
        rounds.record(&out, &holders);
    }
    rounds.finish()
}
