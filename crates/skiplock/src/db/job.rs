//! Job statements: one function per file in `job/`, each one round trip.

use super::DbError as PgError;
use chrono::{DateTime, Utc};

use super::json::{JsonText, RawJson};
use super::{Exec, Statements};
use std::collections::HashMap;

use crate::client::enqueue::{Columns, InsertOutcome};
use crate::job::{ClaimedJob, JobState, Lease};

/// The JSON columns of `cols` as `jsonb` parameters, borrowed as text.
struct JsonColumns<'a> {
    args: Vec<JsonText<'a>>,
    tags: Vec<Option<JsonText<'a>>>,
    meta: Vec<JsonText<'a>>,
}

impl<'a> JsonColumns<'a> {
    fn of(cols: &'a Columns) -> Self {
        JsonColumns {
            args: cols.args.iter().map(|a| JsonText(a.get())).collect(),
            tags: cols.tags.iter().map(|t| t.as_deref().map(JsonText)).collect(),
            meta: cols.meta.iter().map(|m| JsonText(m)).collect(),
        }
    }
}

/// Inserts `cols` (one statement). Returns one entry per input job, in order.
pub(crate) async fn insert(
    db: &dyn Exec,
    s: &Statements,
    cols: &Columns,
    wake: &[String],
) -> Result<InsertOutcome, PgError> {
    let JsonColumns { args, tags, meta } = JsonColumns::of(cols);
    let rows = db
        .run(
            &s.job_insert,
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
pub(crate) async fn insert_plain(
    db: &dyn Exec,
    s: &Statements,
    cols: &Columns,
    wake: &[String],
) -> Result<Vec<i64>, PgError> {
    let JsonColumns { args, tags, meta } = JsonColumns::of(cols);
    let rows = db
        .run(
            &s.job_insert_plain,
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
pub(crate) async fn insert_one(
    db: &dyn Exec,
    s: &Statements,
    cols: &Columns,
    i: usize,
    wake: bool,
) -> Result<i64, PgError> {
    let tags: Vec<String> = cols.tags[i].as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    let rows = db
        .run(
            &s.job_insert_one,
            &[
                &cols.queue[i],
                &cols.kind[i],
                &JsonText(cols.args[i].get()),
                &cols.priority[i],
                &cols.run_at[i],
                &cols.delay_ms[i],
                &cols.max_attempts[i],
                &tags,
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
pub(crate) async fn holders(db: &dyn Exec, s: &Statements, keys: &[String]) -> Result<HashMap<String, i64>, PgError> {
    let rows = db.run(&s.job_holders, &[&keys]).await?;
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
#[derive(Default)]
pub(crate) struct FinishColumns {
    pub id: Vec<i64>,
    pub token: Vec<i64>,
    pub outcome: Vec<&'static str>,
    pub error: Vec<Option<String>>,
    pub delay_ms: Vec<i64>,
    /// Archive completed jobs (else delete them).
    pub keep_completed: bool,
}

/// Records outcomes `f` and claims per `p`, in one statement. Returns the
/// outcomes written (the leases that still held, with the state each job
/// reached; the others were stale) and the jobs claimed.
pub(crate) async fn finish_claim(
    db: &dyn Exec,
    s: &Statements,
    f: &FinishColumns,
    p: &JobClaimParams<'_>,
) -> Result<(Vec<(Lease, JobState)>, Vec<ClaimedJob>), PgError> {
    let rows = db
        .run(
            &s.job_finish_claim,
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
            timeout: r.try_get::<_, Option<i32>>(16)?.map(|ms| std::time::Duration::from_millis(ms as u64)),
        });
    }
    Ok((finished, claimed))
}

/// A worker's entry in the registry: its id and this process's instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Registered<'a> {
    pub id: &'a str,
    pub instance: i64,
    pub running: i32,
}

/// What a heartbeat found: the leases still held, with whether each job has
/// a cancel request, and whether the registry entry was kept alive.
pub(crate) struct Beaten {
    pub held: Vec<(Lease, bool)>,
    pub registered: bool,
}

/// Extends leases (and keeps `worker`'s registry entry alive, if given).
pub(crate) async fn heartbeat(
    db: &dyn Exec,
    s: &Statements,
    leases: &[Lease],
    lease_ms: i64,
    progress: &[Option<String>],
    worker: Option<Registered<'_>>,
) -> Result<Beaten, PgError> {
    let ids: Vec<i64> = leases.iter().map(|l| l.id).collect();
    let tokens: Vec<i64> = leases.iter().map(|l| l.token).collect();
    let progress: Vec<Option<JsonText<'_>>> =
        (0..leases.len()).map(|i| progress.get(i).and_then(|p| p.as_deref()).map(JsonText)).collect();
    let (id, instance, running) = match worker {
        Some(w) => (Some(w.id), Some(w.instance), Some(w.running)),
        None => (None, None, None),
    };
    let rows = db.run(&s.job_heartbeat, &[&ids, &tokens, &lease_ms, &progress, &id, &instance, &running]).await?;
    let mut out = Beaten { held: Vec::with_capacity(rows.len()), registered: false };
    for r in &rows {
        match r.try_get::<_, Option<i64>>(0)? {
            Some(id) => out.held.push((Lease { id, token: r.try_get(1)? }, r.try_get(2)?)),
            None => out.registered = true,
        }
    }
    Ok(out)
}

/// Gives back the live jobs leased to `worker` but not among `known`;
/// returns their ids.
pub(crate) async fn release_unknown(
    db: &dyn Exec,
    s: &Statements,
    worker: &str,
    known: &[Lease],
) -> Result<Vec<i64>, PgError> {
    let ids: Vec<i64> = known.iter().map(|l| l.id).collect();
    let tokens: Vec<i64> = known.iter().map(|l| l.token).collect();
    let rows = db.run(&s.job_release_unknown, &[&worker, &ids, &tokens]).await?;
    rows.iter().map(|r| r.try_get(0).map_err(PgError::from)).collect()
}

/// Takes back up to `limit` jobs with expired leases.
pub(crate) async fn rescue(db: &dyn Exec, s: &Statements, limit: i64) -> Result<Vec<(i64, JobState)>, PgError> {
    let rows = db.run(&s.job_rescue, &[&limit]).await?;
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
pub(crate) async fn promote(db: &dyn Exec, s: &Statements, limit: i64) -> Result<Promoted, PgError> {
    let rows = db.run(&s.job_promote, &[&limit]).await?;
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
pub(crate) async fn cancel(db: &dyn Exec, s: &Statements, ids: &[i64]) -> Result<Vec<(i64, String)>, PgError> {
    let rows = db.run(&s.job_cancel, &[&ids]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Retries jobs; returns the ids made available.
pub(crate) async fn retry(db: &dyn Exec, s: &Statements, ids: &[i64]) -> Result<Vec<i64>, PgError> {
    let rows = db.run(&s.job_retry, &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Which of `ids` are still unfinished.
pub(crate) async fn hot_ids(db: &dyn Exec, s: &Statements, ids: &[i64]) -> Result<Vec<i64>, PgError> {
    let rows = db.run(&s.job_hot_ids, &[&ids]).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One job by id.
pub(crate) async fn get(db: &dyn Exec, s: &Statements, id: i64) -> Result<Option<tokio_postgres::Row>, PgError> {
    Ok(db.run(&s.job_get, &[&id]).await?.into_iter().next())
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
pub(crate) async fn list(
    db: &dyn Exec,
    s: &Statements,
    p: &JobListParams<'_>,
) -> Result<Vec<tokio_postgres::Row>, PgError> {
    db.run(&s.job_list, &[&p.state, &p.queue, &p.kind, &p.before_id, &p.limit]).await
}

/// Counts by queue and state.
pub(crate) async fn stats(db: &dyn Exec, s: &Statements) -> Result<Vec<tokio_postgres::Row>, PgError> {
    db.run(&s.job_stats, &[]).await
}

fn state(s: &str) -> JobState {
    // The statements only return state names (finish.sql: outcome names that
    // are states too), so this cannot fail unless the SQL is changed wrongly.
    s.parse().expect("statement returned a job state name")
}

/// Wakes the workers of `queues` (at commit, inside a transaction).
pub(crate) async fn notify(db: &dyn Exec, s: &Statements, queues: &[String]) -> Result<(), PgError> {
    db.run(&s.job_notify, &[&queues]).await?;
    Ok(())
}
