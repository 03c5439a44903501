//! The bookkeeping of a fleet run and its [`Audit`]: which jobs were
//! enqueued (recorded in the enqueue's own transaction), where each one
//! ended, and whether two executions of one job ever overlapped.
//!
//! Three tables, made by [`setup`]: `public.fleet_enqueued` in the queue's
//! database, and `public.fleet_log` (one row per execution, written by the
//! worker's logging handlers) and `public.fleet_kills` (when each killed
//! process was reaped) in the log's, which may be the same database.

use std::collections::{HashMap, HashSet};
use std::fmt;

use skiplock::{Client, EnqueueOptions, NewJob};

/// A boxed error, for helpers that meet both the library's and the driver's.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

const ENQUEUED_DDL: &str = "CREATE TABLE IF NOT EXISTS public.fleet_enqueued (id bigint PRIMARY KEY)";
const LOG_DDL: &str = "
    CREATE TABLE IF NOT EXISTS public.fleet_log (
        id bigserial PRIMARY KEY, job_id bigint NOT NULL, attempt int NOT NULL,
        pid int NOT NULL, started_at timestamptz NOT NULL, finished_at timestamptz);
    CREATE INDEX IF NOT EXISTS fleet_log_job_idx ON public.fleet_log (job_id);
    CREATE TABLE IF NOT EXISTS public.fleet_kills (pid int NOT NULL, killed_at timestamptz NOT NULL)";

/// Creates the bookkeeping tables: `fleet_enqueued` in `queue_db`,
/// `fleet_log` and `fleet_kills` in `log_db` (they may be one database).
///
/// # Errors
///
/// Database errors.
pub async fn setup(queue_db: &tokio_postgres::Client, log_db: &tokio_postgres::Client) -> Result<(), BoxError> {
    queue_db.batch_execute(ENQUEUED_DDL).await?;
    log_db.batch_execute(LOG_DDL).await?;
    Ok(())
}

/// Enqueues `n` jobs of `kind` on `queue` (args `{"n": i}`) in one
/// transaction of `pg` that also records their ids in `fleet_enqueued`: both
/// or neither, whatever happens to the connection.
///
/// # Errors
///
/// The library's or the database's; nothing was enqueued then.
pub async fn enqueue(
    client: &Client,
    pg: &mut tokio_postgres::Client,
    queue: &str,
    kind: &str,
    n: usize,
) -> Result<Vec<i64>, BoxError> {
    enqueue_with(client, pg, kind, n, EnqueueOptions::new().queue(queue)).await
}

/// [`enqueue`] with options of their own (a queue, `max_attempts(1)`, …).
///
/// # Errors
///
/// As [`enqueue`].
pub async fn enqueue_with(
    client: &Client,
    pg: &mut tokio_postgres::Client,
    kind: &str,
    n: usize,
    opts: EnqueueOptions,
) -> Result<Vec<i64>, BoxError> {
    let jobs = (0..n)
        .map(|i| NewJob::from_json(kind, &format!(r#"{{"n":{i}}}"#), opts.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let tx = pg.transaction().await?;
    let ids: Vec<i64> = client.enqueue_many_tx(&tx, jobs).await?.into_iter().map(|e| e.id).collect();
    tx.execute("INSERT INTO public.fleet_enqueued SELECT unnest($1::bigint[])", &[&ids]).await?;
    tx.commit().await?;
    Ok(ids)
}

/// Records that worker `pid` was killed and reaped: its executions without
/// an end ended by now.
///
/// # Errors
///
/// Database errors.
pub async fn record_kill(log_db: &tokio_postgres::Client, pid: u32) -> Result<(), tokio_postgres::Error> {
    let pid = i32::try_from(pid).unwrap_or(i32::MAX);
    log_db.execute("INSERT INTO public.fleet_kills VALUES ($1, clock_timestamp())", &[&pid]).await.map(drop)
}

/// Two executions of one job whose times overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// The job.
    pub job_id: i64,
    /// The earlier execution: (attempt, pid).
    pub first: (i32, i32),
    /// The later one, which started before the first ended.
    pub second: (i32, i32),
}

/// Where every job of a run ended, checked against the guarantees.
#[derive(Debug, Clone, Default)]
pub struct Audit {
    /// Jobs recorded in `fleet_enqueued`.
    pub enqueued: i64,
    /// Archived as completed.
    pub completed: i64,
    /// Archived as discarded.
    pub discarded: i64,
    /// Archived as cancelled.
    pub cancelled: i64,
    /// Still in the hot table (not in a final state).
    pub unfinished: i64,
    /// Of those, running with a lease that has run out.
    pub expired_running: i64,
    /// Enqueued, yet in neither the hot table nor the archive.
    pub lost: i64,
    /// Final states recorded more than once for one job (archive rows past
    /// one per id, and ids both archived and in the hot table).
    pub duplicated_finals: i64,
    /// Jobs in either table that `fleet_enqueued` does not know.
    pub unexpected: i64,
    /// The highest attempt number reached.
    pub max_attempt: i32,
    /// Executions logged (0 without a log).
    pub executions: i64,
    /// Executions with neither an end nor a killed process (taken to run
    /// forever when looking for overlaps).
    pub unended: i64,
    /// Executions of one job that overlapped in time.
    pub overlaps: Vec<Overlap>,
    /// Completed jobs whose completing attempt has no logged execution that
    /// ended (only with a log).
    pub unexecuted: i64,
    /// Discarded jobs with no logged execution at all, whose last holder
    /// was alive (not SIGKILLed): an attempt used up by a job that never
    /// ran, which must not happen (only with a log).
    pub discarded_unrun: i64,
    /// Discarded jobs with no logged execution whose last holder was
    /// SIGKILLed: the kill may have come after the handler started and
    /// before it logged, so the attempt counts; reported, not a failure.
    pub discarded_unrun_killed: i64,
}

impl Audit {
    /// Audits the queue's database and, if given, the execution log.
    ///
    /// # Errors
    ///
    /// Database errors.
    pub async fn run(
        queue_db: &tokio_postgres::Client,
        log_db: Option<&tokio_postgres::Client>,
    ) -> Result<Audit, tokio_postgres::Error> {
        let one = |sql: &'static str| async move { queue_db.query_one(sql, &[]).await.map(|r| r.get::<_, i64>(0)) };
        let mut a = Audit {
            enqueued: one("SELECT count(*) FROM public.fleet_enqueued").await?,
            unfinished: one("SELECT count(*) FROM skiplock.jobs").await?,
            expired_running: one(
                "SELECT count(*) FROM skiplock.jobs WHERE state = 'running' AND lease_expires_at < now()",
            )
            .await?,
            lost: one("SELECT count(*) FROM public.fleet_enqueued e
                       WHERE NOT EXISTS (SELECT 1 FROM skiplock.jobs j WHERE j.id = e.id)
                         AND NOT EXISTS (SELECT 1 FROM skiplock.jobs_archive a WHERE a.id = e.id)")
            .await?,
            duplicated_finals: one("SELECT (SELECT count(*) - count(DISTINCT id) FROM skiplock.jobs_archive)
                                      + (SELECT count(*) FROM skiplock.jobs j
                                         WHERE EXISTS (SELECT 1 FROM skiplock.jobs_archive a WHERE a.id = j.id))")
            .await?,
            unexpected: one("SELECT count(*) FROM (SELECT id FROM skiplock.jobs UNION ALL
                                                   SELECT id FROM skiplock.jobs_archive) x
                             WHERE NOT EXISTS (SELECT 1 FROM public.fleet_enqueued e WHERE e.id = x.id)")
            .await?,
            ..Audit::default()
        };
        let row = queue_db
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'completed'), count(*) FILTER (WHERE state = 'discarded'),
                        count(*) FILTER (WHERE state = 'cancelled'),
                        greatest((SELECT max(attempt) FROM skiplock.jobs), max(attempt), 0)
                 FROM skiplock.jobs_archive",
                &[],
            )
            .await?;
        (a.completed, a.discarded, a.cancelled, a.max_attempt) = (row.get(0), row.get(1), row.get(2), row.get(3));
        if let Some(log) = log_db {
            a.check_executions(queue_db, log).await?;
        }
        Ok(a)
    }

    async fn check_executions(
        &mut self,
        queue_db: &tokio_postgres::Client,
        log: &tokio_postgres::Client,
    ) -> Result<(), tokio_postgres::Error> {
        // Times in microseconds of the log database's clock; an execution
        // without an end ended when its process was reaped, if it was.
        let rows = log
            .query(
                "SELECT l.job_id, l.attempt, l.pid,
                        (extract(epoch FROM l.started_at) * 1e6)::bigint,
                        (extract(epoch FROM coalesce(l.finished_at, k.killed_at)) * 1e6)::bigint,
                        l.finished_at IS NOT NULL
                 FROM public.fleet_log l
                 LEFT JOIN (SELECT pid, min(killed_at) AS killed_at FROM public.fleet_kills GROUP BY pid) k
                   ON k.pid = l.pid
                 ORDER BY l.job_id, l.started_at, l.id",
                &[],
            )
            .await?;
        self.executions = rows.len() as i64;
        let mut ended = HashSet::new();
        // Per job, in order of start: the execution that ends last so far,
        // and its end (None: never). A start before it is an overlap.
        let mut last: Option<(i64, Option<i64>, (i32, i32))> = None;
        for r in &rows {
            let (job_id, attempt, pid): (i64, i32, i32) = (r.get(0), r.get(1), r.get(2));
            let (start, end, finished): (i64, Option<i64>, bool) = (r.get(3), r.get(4), r.get(5));
            if end.is_none() {
                self.unended += 1;
            }
            if finished {
                ended.insert((job_id, attempt));
            }
            match &mut last {
                Some((job, latest, who)) if *job == job_id => {
                    if latest.is_none_or(|l| start < l) {
                        self.overlaps.push(Overlap { job_id, first: *who, second: (attempt, pid) });
                    }
                    if let Some(l) = *latest
                        && end.is_none_or(|e| e > l)
                    {
                        *latest = end;
                        *who = (attempt, pid);
                    }
                }
                _ => last = Some((job_id, end, (attempt, pid))),
            }
        }
        let completed: HashMap<i64, i32> = queue_db
            .query("SELECT id, attempt FROM skiplock.jobs_archive WHERE state = 'completed'", &[])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        self.unexecuted = completed.iter().filter(|(id, attempt)| !ended.contains(&(**id, **attempt))).count() as i64;

        // Discarded jobs that never ran: their attempts were used up with no
        // execution logged. A worker's default id ends in `-PID-XXXX`, which
        // tells whether its holder was one of the processes killed.
        let ran: HashSet<i64> = rows.iter().map(|r| r.get::<_, i64>(0)).collect();
        let killed: HashSet<i32> =
            log.query("SELECT DISTINCT pid FROM public.fleet_kills", &[]).await?.iter().map(|r| r.get(0)).collect();
        for r in
            queue_db.query("SELECT id, leased_by FROM skiplock.jobs_archive WHERE state = 'discarded'", &[]).await?
        {
            let (id, by): (i64, Option<String>) = (r.get(0), r.get(1));
            if ran.contains(&id) {
                continue;
            }
            if by.as_deref().and_then(pid_of_worker_id).is_some_and(|pid| killed.contains(&pid)) {
                self.discarded_unrun_killed += 1;
            } else {
                self.discarded_unrun += 1;
            }
        }
        Ok(())
    }

    /// Every broken guarantee, one line each; empty when the run was clean.
    /// `drained`: every job should be in a final state by now.
    pub fn problems(&self, drained: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.lost > 0 {
            out.push(format!("{} jobs lost", self.lost));
        }
        if self.duplicated_finals > 0 {
            out.push(format!("{} duplicated final states", self.duplicated_finals));
        }
        if self.unexpected > 0 {
            out.push(format!("{} jobs nobody enqueued", self.unexpected));
        }
        if drained && self.unfinished > 0 {
            out.push(format!(
                "{} jobs not in a final state ({} running past their lease)",
                self.unfinished, self.expired_running
            ));
        }
        if !self.overlaps.is_empty() {
            out.push(format!(
                "{} overlapping executions, e.g. {:?}",
                self.overlaps.len(),
                &self.overlaps[..self.overlaps.len().min(5)]
            ));
        }
        if self.unexecuted > 0 {
            out.push(format!("{} completed jobs without an execution of their completing attempt", self.unexecuted));
        }
        if self.discarded_unrun > 0 {
            out.push(format!("{} jobs discarded without ever having run (their worker alive)", self.discarded_unrun));
        }
        out
    }

    /// Panics with every problem unless the run was clean and drained.
    pub fn assert_clean(&self) {
        let problems = self.problems(true);
        assert!(problems.is_empty(), "{self}\n{}", problems.join("\n"));
    }
}

/// The process id in a worker's default id (`host-PID-xxxx`).
fn pid_of_worker_id(id: &str) -> Option<i32> {
    let mut parts = id.rsplitn(3, '-');
    let _random = parts.next()?;
    parts.next()?.parse().ok()
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "jobs {}: completed {}, discarded {}, cancelled {}, unfinished {}; lost {}, duplicated finals {}, \
             unexpected {}; max attempt {}; executions {} ({} unended), overlapping {}, completed unexecuted {}; \
             discarded unrun {} (+{} whose worker was killed)",
            self.enqueued,
            self.completed,
            self.discarded,
            self.cancelled,
            self.unfinished,
            self.lost,
            self.duplicated_finals,
            self.unexpected,
            self.max_attempt,
            self.executions,
            self.unended,
            self.overlaps.len(),
            self.unexecuted,
            self.discarded_unrun,
            self.discarded_unrun_killed
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pid_is_read_from_a_default_worker_id() {
        assert_eq!(super::pid_of_worker_id("my-host-4242-0a1f"), Some(4242));
        assert_eq!(super::pid_of_worker_id("web-0"), None);
    }
}
