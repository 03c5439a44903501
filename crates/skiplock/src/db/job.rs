//! Job statements: one function per file in `job/`, each one round trip.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::On;
use super::columns::{Columns, InsertOutcome};
use super::json::{JsonText, RawJson};
use crate::error::Result;
use crate::job::{ClaimedJob, JobState, Lease, Outcome};
use crate::validate;

/// Longest error text kept per attempt, in bytes; longer ones keep their end
/// (where a stack trace or stderr says what finally went wrong).
pub const ERROR_TEXT_MAX: usize = 8 << 10;

/// Trims error text to [`ERROR_TEXT_MAX`] (keeping the end) and replaces NUL,
/// which PostgreSQL text cannot hold.
pub(crate) fn error_text(s: &str) -> String {
    let s = if s.len() > ERROR_TEXT_MAX {
        let mut cut = s.len() - ERROR_TEXT_MAX;
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        format!("…{}", &s[cut..])
    } else {
        s.to_owned()
    };
    s.replace('\0', "\u{fffd}")
}

/// What a batch of lease-fenced writes did, by lease: two attempts of one
/// job (a stale one and the current one) can be in one batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Written {
    /// Leases that held, with the state each job reached.
    pub applied: Vec<(Lease, JobState)>,
    /// Leases that no longer held.
    pub stale: Vec<Lease>,
}

/// What a heartbeat did, by lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Beat {
    /// Leases extended.
    pub extended: Vec<Lease>,
    /// Of those, jobs an operator asked to cancel.
    pub cancel_requested: Vec<Lease>,
    /// Leases that no longer held.
    pub lost: Vec<Lease>,
    /// Whether the worker's registry entry was kept alive.
    pub registered: bool,
}

/// The JSON columns of `cols` as `jsonb` parameters, borrowed as text (the
/// tags serialised, one JSON array per job).
struct JsonColumns<'a> {
    args: Vec<JsonText<'a>>,
    tags: Vec<Option<String>>,
    meta: Vec<JsonText<'a>>,
}

impl<'a> JsonColumns<'a> {
    fn of(cols: &'a Columns) -> Self {
        JsonColumns {
            args: cols.args.iter().map(|a| JsonText(a.get())).collect(),
            tags: cols.tags_json(),
            meta: cols.meta.iter().map(|m| JsonText(m)).collect(),
        }
    }

    fn tags(&self) -> Vec<Option<JsonText<'_>>> {
        self.tags.iter().map(|t| t.as_deref().map(JsonText)).collect()
    }
}

/// Inserts `cols` (one statement). Returns one entry per input job, in order.
pub(crate) async fn insert(on: On<'_>, cols: &Columns, wake: &[String]) -> Result<InsertOutcome> {
    let json = JsonColumns::of(cols);
    let (args, tags, meta) = (&json.args, json.tags(), &json.meta);
    let rows = on
        .run(
            &on.s.job_insert,
            &[
                &cols.queue,
                &cols.kind,
                &args,
                &cols.priority,
                &cols.run_at,
                &cols.delay_ms,
                &cols.max_attempts,
                &cols.unique_key,
                &tags,
                &meta,
                &cols.timeout_ms,
                &cols.unique_args,
                &cols.unique_period_s,
                &cols.unique_final,
                &wake,
            ],
        )
        .await?;
    let row = rows.first().expect("one row");
    Ok(InsertOutcome::new(
        row.try_get::<_, Option<Vec<i64>>>(0)?.unwrap_or_default(),
        row.try_get::<_, Option<Vec<i64>>>(1)?.unwrap_or_default(),
        row.try_get::<_, Option<Vec<i64>>>(3)?.unwrap_or_default(),
        row.try_get::<_, Option<Vec<String>>>(4)?.unwrap_or_default(),
    ))
}

/// Inserts `cols`, none with a unique key, in one statement. Returns their
/// ids in input order.
pub(crate) async fn insert_plain(on: On<'_>, cols: &Columns, wake: &[String]) -> Result<Vec<i64>> {
    let json = JsonColumns::of(cols);
    let (args, tags, meta) = (&json.args, json.tags(), &json.meta);
    let rows = on
        .run(
            &on.s.job_insert_plain,
            &[
                &cols.queue,
                &cols.kind,
                &args,
                &cols.priority,
                &cols.run_at,
                &cols.delay_ms,
                &cols.max_attempts,
                &tags,
                &meta,
                &cols.timeout_ms,
                &wake,
            ],
        )
        .await?;
    Ok(rows.first().expect("one row").try_get::<_, Option<Vec<i64>>>(0)?.unwrap_or_default())
}

/// Inserts job `i` of `cols`, which has no unique key, alone: one short
/// statement. Returns its id.
pub(crate) async fn insert_one(on: On<'_>, cols: &Columns, i: usize, wake: bool) -> Result<i64> {
    let tags = &cols.tags[i];
    let rows = on
        .run(
            &on.s.job_insert_one,
            &[
                &cols.queue[i],
                &cols.kind[i],
                &JsonText(cols.args[i].get()),
                &cols.priority[i],
                &cols.run_at[i],
                &cols.delay_ms[i],
                &cols.max_attempts[i],
                tags,
                &JsonText(&cols.meta[i]),
                &cols.timeout_ms[i],
                &wake,
            ],
        )
        .await?;
    Ok(rows.first().expect("one row").try_get(0)?)
}

/// The jobs holding `keys` (unfinished ones, or finished ones kept by a
/// key's final-state scope): key to id.
pub(crate) async fn holders(on: On<'_>, keys: &[String]) -> Result<HashMap<String, i64>> {
    let rows = on.run(&on.s.job_holders, &[&keys]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Parameters of a claim.
pub(crate) struct JobClaimParams<'a> {
    pub queue: &'a str,
    pub limit: i64,
    pub lease_ms: i64,
    pub worker: &'a str,
}

impl JobClaimParams<'_> {
    /// Claims nothing: for writing outcomes alone.
    pub const NONE: JobClaimParams<'static> = JobClaimParams { queue: "", limit: 0, lease_ms: 1, worker: "" };
}

/// The outcomes of many attempts as the arrays of `finish_claim.sql`.
#[derive(Default, Debug)]
pub(crate) struct FinishColumns {
    pub id: Vec<i64>,
    pub token: Vec<i64>,
    pub outcome: Vec<&'static str>,
    pub error: Vec<Option<String>>,
    pub delay_ms: Vec<i64>,
    /// Archive completed jobs (else delete them).
    pub keep_completed: bool,
}

impl FinishColumns {
    /// `items` as the statement's arrays. Error texts are stored trimmed
    /// and passed through `redact` (no credentials); waits are capped at
    /// the schedule horizon (a longer one is a bug upstream, not a reason
    /// to refuse the outcome).
    pub fn of<'a>(
        items: impl IntoIterator<Item = (Lease, &'a Outcome)>,
        keep_completed: bool,
        redact: &dyn Fn(&str) -> String,
    ) -> FinishColumns {
        let mut c = FinishColumns { keep_completed, ..FinishColumns::default() };
        let text = |s: &str| error_text(&redact(s));
        // In id order, as the heartbeat's (see `heartbeat`): one lock order.
        let mut items: Vec<(Lease, &Outcome)> = items.into_iter().collect();
        items.sort_by_key(|(lease, _)| lease.id);
        for (lease, outcome) in items {
            let (outcome, error, delay) = match outcome {
                Outcome::Completed => ("completed", None, Duration::ZERO),
                Outcome::Failed { error, retry_in } => ("failed", Some(text(error)), *retry_in),
                Outcome::Snoozed(d) => ("snoozed", None, *d),
                Outcome::Cancelled(reason) => ("cancelled", reason.as_deref().map(text), Duration::ZERO),
                Outcome::Discarded(reason) => ("discarded", Some(text(reason)), Duration::ZERO),
                Outcome::Released => ("released", None, Duration::ZERO),
            };
            c.id.push(lease.id);
            c.token.push(lease.token);
            c.outcome.push(outcome);
            c.error.push(error);
            let ms = delay.min(validate::SCHEDULE_HORIZON).as_millis();
            c.delay_ms.push(i64::try_from(ms).expect("the horizon fits"));
        }
        c
    }

    /// The leases of the outcomes.
    fn leases(&self) -> impl Iterator<Item = Lease> + '_ {
        self.id.iter().zip(&self.token).map(|(&id, &token)| Lease { id, token })
    }
}

/// Records outcomes `f` and claims per `p`, in one statement. Returns what
/// was written (the leases that still held, with the state each job
/// reached; the others were stale) and the jobs claimed.
pub(crate) async fn finish_claim(
    on: On<'_>,
    f: &FinishColumns,
    p: &JobClaimParams<'_>,
) -> Result<(Written, Vec<ClaimedJob>)> {
    if f.id.is_empty() && p.limit == 0 {
        return Ok((Written::default(), Vec::new()));
    }
    let rows = on
        .run(
            &on.s.job_finish_claim,
            &[
                &f.id,
                &f.token,
                &f.outcome,
                &f.error,
                &f.delay_ms,
                &p.queue,
                &p.limit,
                &p.lease_ms,
                &p.worker,
                &f.keep_completed,
            ],
        )
        .await?;
    let mut finished = Vec::new();
    let mut claimed = Vec::new();
    for r in &rows {
        if r.try_get::<_, &str>(0)? == "finished" {
            finished.push((Lease { id: r.try_get(1)?, token: r.try_get(9)? }, state(r.try_get(2)?)));
            continue;
        }
        claimed.push(ClaimedJob {
            id: r.try_get(1)?,
            queue: r.try_get(3)?,
            kind: r.try_get(4)?,
            args: r.try_get::<_, RawJson>(5)?.0,
            priority: r.try_get(6)?,
            attempt: r.try_get(7)?,
            max_attempts: r.try_get(8)?,
            lease: Lease { id: r.try_get(1)?, token: r.try_get(9)? },
            lease_expires_at: r.try_get(10)?,
            run_at: r.try_get(11)?,
            created_at: r.try_get(12)?,
            attempted_at: r.try_get(13)?,
            tags: r.try_get(14)?,
            meta: r.try_get(15)?,
            timeout: r.try_get::<_, Option<i32>>(16)?.map(|ms| Duration::from_millis(ms as u64)),
        });
    }
    let held: HashSet<Lease> = finished.iter().map(|(l, _)| *l).collect();
    let stale = f.leases().filter(|l| !held.contains(l)).collect();
    Ok((Written { applied: finished, stale }, claimed))
}

/// A worker's entry in the registry: its id and this process's instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registered<'a> {
    pub id: &'a str,
    pub instance: i64,
    pub running: i32,
}

/// Extends `leases` by `lease_ms` and stores each job's progress (JSON text,
/// or `None` to leave it) in `meta.progress`, and keeps `worker`'s registry
/// entry alive, if given.
pub(crate) async fn heartbeat(
    on: On<'_>,
    leases: &[Lease],
    lease_ms: i64,
    progress: &[Option<String>],
    worker: Option<Registered<'_>>,
) -> Result<Beat> {
    if leases.is_empty() && worker.is_none() {
        return Ok(Beat::default());
    }
    // In id order: the statement locks the rows in the arrays' order, and
    // every statement that locks many jobs' rows (this, the finish) must
    // take them in one order, or two of them deadlock (40P01).
    let mut order: Vec<usize> = (0..leases.len()).collect();
    order.sort_by_key(|&i| leases[i].id);
    let ids: Vec<i64> = order.iter().map(|&i| leases[i].id).collect();
    let tokens: Vec<i64> = order.iter().map(|&i| leases[i].token).collect();
    let progress: Vec<Option<JsonText<'_>>> =
        order.iter().map(|&i| progress.get(i).and_then(|p| p.as_deref()).map(JsonText)).collect();
    let (id, instance, running) = match worker {
        Some(w) => (Some(w.id), Some(w.instance), Some(w.running)),
        None => (None, None, None),
    };
    let rows = on.run(&on.s.job_heartbeat, &[&ids, &tokens, &lease_ms, &progress, &id, &instance, &running]).await?;
    let mut beat = Beat::default();
    for r in &rows {
        match r.try_get::<_, Option<i64>>(0)? {
            Some(id) => {
                let held = Lease { id, token: r.try_get(1)? };
                beat.extended.push(held);
                if r.try_get(2)? {
                    beat.cancel_requested.push(held);
                }
            }
            None => beat.registered = true,
        }
    }
    let kept: HashSet<Lease> = beat.extended.iter().copied().collect();
    beat.lost = leases.iter().copied().filter(|l| !kept.contains(l)).collect();
    Ok(beat)
}

/// Gives back the live jobs leased to `worker` but not among `known`;
/// returns their ids.
pub(crate) async fn release_unknown(on: On<'_>, worker: &str, known: &[Lease]) -> Result<Vec<i64>> {
    let ids: Vec<i64> = known.iter().map(|l| l.id).collect();
    let tokens: Vec<i64> = known.iter().map(|l| l.token).collect();
    let rows = on.run(&on.s.job_release_unknown, &[&worker, &ids, &tokens]).await?;
    Ok(rows.iter().map(|r| r.try_get(0)).collect::<Result<_, _>>()?)
}

/// Takes back up to `limit` jobs with expired leases.
pub(crate) async fn rescue(on: On<'_>, limit: i64) -> Result<Vec<(i64, JobState)>> {
    let rows = on.run(&on.s.job_rescue, &[&limit]).await?;
    Ok(rows.iter().map(|r| (r.get::<_, i64>(0), state(r.get(1)))).collect())
}

/// What one scheduler pass moved.
#[derive(Debug, Default)]
pub(crate) struct Promoted {
    pub per_queue: Vec<(String, i64)>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub db_now: Option<DateTime<Utc>>,
}

/// Makes up to `limit` due jobs available.
pub(crate) async fn promote(on: On<'_>, limit: i64) -> Result<Promoted> {
    let rows = on.run(&on.s.job_promote, &[&limit]).await?;
    let mut out = Promoted::default();
    for r in &rows {
        if let Some(q) = r.get::<_, Option<String>>(0) {
            out.per_queue.push((q, r.get(1)));
        }
        out.next_run_at = r.get(2);
        out.db_now = r.get(3);
    }
    Ok(out)
}

/// Cancels jobs; returns (id, "cancelled" | "cancelling") for those found unfinished.
pub(crate) async fn cancel(on: On<'_>, ids: &[i64]) -> Result<Vec<(i64, String)>> {
    let rows = on.run(&on.s.job_cancel, &[&ids]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Retries jobs; returns the ids made available.
pub(crate) async fn retry(on: On<'_>, ids: &[i64]) -> Result<Vec<i64>> {
    let rows = on.run(&on.s.job_retry, &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Which of `ids` are still unfinished.
pub(crate) async fn hot_ids(on: On<'_>, ids: &[i64]) -> Result<Vec<i64>> {
    let rows = on.run(&on.s.job_hot_ids, &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One job by id.
pub(crate) async fn get(on: On<'_>, id: i64) -> Result<Option<tokio_postgres::Row>> {
    Ok(on.run(&on.s.job_get, &[&id]).await?.into_iter().next())
}

/// A filter for [`list`].
pub(crate) struct JobListParams<'a> {
    pub state: Option<&'a str>,
    pub queue: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// Jobs, newest first.
pub(crate) async fn list(on: On<'_>, p: &JobListParams<'_>) -> Result<Vec<tokio_postgres::Row>> {
    on.run(&on.s.job_list, &[&p.state, &p.queue, &p.kind, &p.before_id, &p.limit]).await
}

/// Counts by queue and state.
pub(crate) async fn stats(on: On<'_>) -> Result<Vec<tokio_postgres::Row>> {
    on.run(&on.s.job_stats, &[]).await
}

fn state(s: &str) -> JobState {
    // The statements only return state names (finish.sql: outcome names that
    // are states too), so this cannot fail unless the SQL is changed wrongly.
    s.parse().expect("statement returned a job state name")
}

/// Wakes the workers of `queues` (at commit, inside a transaction).
pub(crate) async fn notify(on: On<'_>, queues: &[String]) -> Result<()> {
    on.run(&on.s.job_notify, &[&queues]).await?;
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_keeps_the_end_and_drops_nul() {
        let long = format!("{}END", "é".repeat(ERROR_TEXT_MAX));
        let t = error_text(&long);
        assert!(t.len() <= ERROR_TEXT_MAX + "…".len() + 1);
        assert!(t.ends_with("END") && t.starts_with('…'));
        assert_eq!(error_text("a\0b"), "a\u{fffd}b");
    }
}
