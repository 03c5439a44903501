//! The job lifecycle against a model: random sequences of enqueue, claim,
//! complete, fail, release, heartbeat, lease expiry and rescue, cancel and
//! retry, through the library's lifecycle calls, with the whole database
//! compared to a simple model after every step. Leases handed out are kept
//! and reused at random, so stale writes are tried all the time.
//!
//! Invariants checked: every job is in exactly one row (hot table or
//! archive) in the state, attempt and lease the model says; a claim takes
//! the oldest available jobs; a write or heartbeat with a stale lease
//! changes nothing and is reported stale; final states never change except
//! by an operator's retry.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use skiplock::{CancelResult, EnqueueOptions, JobState, Lease, NewJob};

use crate::support::{TestDb, fresh};

const QUEUE: &str = "model";
const LEASE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
enum Op {
    Enqueue {
        n: usize,
        max_attempts: i32,
    },
    Claim {
        limit: i64,
    },
    Complete {
        pick: usize,
    },
    /// Fail; `later`: retry after an hour (retryable), else at once.
    Fail {
        pick: usize,
        later: bool,
    },
    Release {
        pick: usize,
    },
    Heartbeat {
        pick: usize,
    },
    /// Runs out the lease of a running job (as a dead worker's would).
    Expire {
        pick: usize,
    },
    Rescue,
    Cancel {
        pick: usize,
    },
    Retry {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let pick = 0usize..64;
    prop_oneof![
        3 => (1usize..=3, 1i32..=3).prop_map(|(n, max_attempts)| Op::Enqueue { n, max_attempts }),
        4 => (1i64..=3).prop_map(|limit| Op::Claim { limit }),
        3 => pick.clone().prop_map(|pick| Op::Complete { pick }),
        3 => (pick.clone(), any::<bool>()).prop_map(|(pick, later)| Op::Fail { pick, later }),
        1 => pick.clone().prop_map(|pick| Op::Release { pick }),
        1 => pick.clone().prop_map(|pick| Op::Heartbeat { pick }),
        2 => pick.clone().prop_map(|pick| Op::Expire { pick }),
        2 => Just(Op::Rescue),
        2 => pick.clone().prop_map(|pick| Op::Cancel { pick }),
        2 => pick.prop_map(|pick| Op::Retry { pick }),
    ]
}

/// One job as the model sees it.
#[derive(Debug, Clone, PartialEq)]
struct MJob {
    state: JobState,
    attempt: i32,
    max_attempts: i32,
    /// The lease token while running.
    token: Option<i64>,
    cancel_requested: bool,
    /// Its lease has run out (a rescue takes it back).
    expired: bool,
    /// When it became available (the step), for the claim's order.
    since: u64,
}

#[derive(Debug, Default)]
struct Model {
    jobs: BTreeMap<i64, MJob>,
    /// Every lease ever handed out, current or stale.
    leases: Vec<Lease>,
    step: u64,
}

impl Model {
    fn current(&self, lease: &Lease) -> bool {
        self.jobs.get(&lease.id).is_some_and(|j| j.token == Some(lease.token))
    }

    fn pick_lease(&self, pick: usize) -> Option<Lease> {
        (!self.leases.is_empty()).then(|| self.leases[pick % self.leases.len()])
    }

    fn pick_job(&self, pick: usize) -> Option<i64> {
        (!self.jobs.is_empty()).then(|| *self.jobs.keys().nth(pick % self.jobs.len()).unwrap())
    }

    fn make_available(&mut self, id: i64) {
        let step = self.step;
        let j = self.jobs.get_mut(&id).unwrap();
        *j = MJob {
            state: JobState::Available,
            token: None,
            cancel_requested: false,
            expired: false,
            since: step,
            ..*j
        };
    }

    fn finish(&mut self, id: i64, state: JobState) {
        let j = self.jobs.get_mut(&id).unwrap();
        *j = MJob { state, token: None, cancel_requested: false, expired: false, ..*j };
    }
}

/// Every job in the database: (state, attempt, max_attempts, lease token),
/// failing if an id is in more than one row.
async fn snapshot(
    pg: &tokio_postgres::Client,
) -> Result<BTreeMap<i64, (JobState, i32, i32, Option<i64>)>, TestCaseError> {
    let rows = pg
        .query(
            "SELECT id, state::text, attempt, max_attempts, lease_token FROM skiplock.jobs
             UNION ALL
             SELECT id, state::text, attempt, max_attempts, NULL FROM skiplock.jobs_archive",
            &[],
        )
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for r in rows {
        let state: String = r.get(1);
        let row = (state.parse().unwrap(), r.get(2), r.get(3), r.get(4));
        let id: i64 = r.get(0);
        prop_assert!(out.insert(id, row).is_none(), "job {id} is in two rows");
    }
    Ok(out)
}

async fn check(t: &TestDb, pg: &tokio_postgres::Client, ops: Vec<Op>) -> Result<(), TestCaseError> {
    pg.batch_execute("TRUNCATE skiplock.jobs, skiplock.jobs_archive").await.unwrap();
    let c = &t.client;
    let mut m = Model::default();
    for op in ops {
        m.step += 1;
        match op {
            Op::Enqueue { n, max_attempts } => {
                let jobs = (0..n)
                    .map(|_| NewJob::new("m", &(), EnqueueOptions::new().queue(QUEUE).max_attempts(max_attempts)));
                let out = c.enqueue_many(jobs.collect::<Result<_, _>>().unwrap()).await.unwrap();
                for e in out {
                    let job = MJob {
                        state: JobState::Available,
                        attempt: 0,
                        max_attempts,
                        token: None,
                        cancel_requested: false,
                        expired: false,
                        since: m.step,
                    };
                    m.jobs.insert(e.id, job);
                }
            }
            Op::Claim { limit } => {
                let mut want: Vec<(u64, i64)> = m
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.state == JobState::Available)
                    .map(|(id, j)| (j.since, *id))
                    .collect();
                want.sort();
                let mut want: Vec<i64> = want.into_iter().take(limit as usize).map(|(_, id)| id).collect();
                let claimed = c.claim(QUEUE, limit, LEASE, "model").await.unwrap();
                let mut got: Vec<i64> = claimed.iter().map(|j| j.id).collect();
                want.sort();
                got.sort();
                prop_assert_eq!(&got, &want, "the claim takes the oldest available jobs");
                for cj in claimed {
                    let j = m.jobs.get_mut(&cj.id).unwrap();
                    prop_assert_eq!(cj.attempt, j.attempt + 1);
                    prop_assert!(!m.leases.iter().any(|l| l.token == cj.lease.token), "a fresh token");
                    j.attempt += 1;
                    j.state = JobState::Running;
                    j.token = Some(cj.lease.token);
                    m.leases.push(cj.lease);
                }
            }
            Op::Complete { pick } | Op::Fail { pick, .. } | Op::Release { pick } => {
                let Some(lease) = m.pick_lease(pick) else { continue };
                let live = m.current(&lease);
                let cancelling = live && m.jobs[&lease.id].cancel_requested;
                let (report, next) = match op {
                    Op::Complete { .. } => (c.complete(&[lease]).await.unwrap(), Some(JobState::Completed)),
                    // An operator's cancel wins over a failure or a release.
                    Op::Fail { .. } if cancelling => (
                        c.fail(&[(lease, "boom".to_owned(), Duration::ZERO)]).await.unwrap(),
                        Some(JobState::Cancelled),
                    ),
                    Op::Release { .. } if cancelling => (c.release(&[lease]).await.unwrap(), Some(JobState::Cancelled)),
                    Op::Fail { later, .. } => {
                        let after = if later { Duration::from_secs(3600) } else { Duration::ZERO };
                        let j = &m.jobs[&lease.id];
                        let next = if j.attempt >= j.max_attempts {
                            JobState::Discarded
                        } else if later {
                            JobState::Retryable
                        } else {
                            JobState::Available
                        };
                        (c.fail(&[(lease, "boom".to_owned(), after)]).await.unwrap(), Some(next))
                    }
                    _ => (c.release(&[lease]).await.unwrap(), None),
                };
                if !live {
                    prop_assert_eq!(&report.stale, &vec![lease.id], "a stale lease writes nothing");
                    prop_assert!(report.applied.is_empty());
                    continue;
                }
                prop_assert!(report.stale.is_empty(), "a live lease is not stale: {:?}", report);
                match next {
                    Some(JobState::Available) => m.make_available(lease.id),
                    Some(JobState::Retryable) => {
                        let j = m.jobs.get_mut(&lease.id).unwrap();
                        *j = MJob {
                            state: JobState::Retryable,
                            token: None,
                            cancel_requested: false,
                            expired: false,
                            ..*j
                        };
                    }
                    Some(state) => m.finish(lease.id, state),
                    None => {
                        m.make_available(lease.id);
                        m.jobs.get_mut(&lease.id).unwrap().attempt -= 1; // a release gives the attempt back
                    }
                }
                let reached = m.jobs[&lease.id].state;
                prop_assert_eq!(&report.applied, &vec![(lease.id, reached)]);
            }
            Op::Heartbeat { pick } => {
                let Some(lease) = m.pick_lease(pick) else { continue };
                let r = c.heartbeat(&[lease], LEASE).await.unwrap();
                if m.current(&lease) {
                    prop_assert_eq!(&r.extended, &vec![lease.id]);
                    let j = m.jobs.get_mut(&lease.id).unwrap();
                    prop_assert_eq!(r.cancel_requested.contains(&lease.id), j.cancel_requested);
                    j.expired = false;
                } else {
                    prop_assert_eq!(&r.lost, &vec![lease.id], "a stale heartbeat extends nothing");
                }
            }
            Op::Expire { pick } => {
                let running: Vec<i64> =
                    m.jobs.iter().filter(|(_, j)| j.state == JobState::Running).map(|(id, _)| *id).collect();
                if running.is_empty() {
                    continue;
                }
                let id = running[pick % running.len()];
                let sql = "UPDATE skiplock.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1";
                pg.execute(sql, &[&id]).await.unwrap();
                m.jobs.get_mut(&id).unwrap().expired = true;
            }
            Op::Rescue => {
                let mut got = c.rescue(100).await.unwrap().rescued;
                let mut want = Vec::new();
                let expired: Vec<i64> = m.jobs.iter().filter(|(_, j)| j.expired).map(|(id, _)| *id).collect();
                for id in expired {
                    let j = &m.jobs[&id];
                    if j.cancel_requested {
                        m.finish(id, JobState::Cancelled);
                    } else if j.attempt >= j.max_attempts {
                        m.finish(id, JobState::Discarded);
                    } else {
                        m.make_available(id);
                    }
                    want.push((id, m.jobs[&id].state));
                }
                got.sort();
                prop_assert_eq!(got, want, "the rescue takes back exactly the expired leases");
            }
            Op::Cancel { pick } => {
                let Some(id) = m.pick_job(pick) else { continue };
                let r = c.cancel(&[id]).await.unwrap();
                let j = m.jobs.get_mut(&id).unwrap();
                let want = match j.state {
                    s if s.is_final() => CancelResult::NotFound,
                    JobState::Running => {
                        j.cancel_requested = true;
                        CancelResult::Cancelling
                    }
                    _ => {
                        m.finish(id, JobState::Cancelled);
                        CancelResult::Cancelled
                    }
                };
                prop_assert_eq!(r, vec![(id, want)]);
            }
            Op::Retry { pick } => {
                let Some(id) = m.pick_job(pick) else { continue };
                let r = c.retry(&[id]).await.unwrap();
                let j = m.jobs[&id].clone();
                let retried = j.state.is_final() || matches!(j.state, JobState::Scheduled | JobState::Retryable);
                if retried {
                    m.make_available(id);
                    let j = m.jobs.get_mut(&id).unwrap();
                    j.max_attempts = j.max_attempts.max(j.attempt + 1);
                }
                prop_assert_eq!(r, if retried { vec![id] } else { vec![] });
            }
        }
        // The whole database against the model.
        let db = snapshot(pg).await?;
        let model: BTreeMap<i64, (JobState, i32, i32, Option<i64>)> =
            m.jobs.iter().map(|(id, j)| (*id, (j.state, j.attempt, j.max_attempts, j.token))).collect();
        prop_assert_eq!(db, model, "after step {}: {:?}", m.step, op);
    }
    Ok(())
}

/// 64 random sequences of up to 40 steps, each on emptied tables.
#[test]
fn the_lifecycle_follows_its_model_under_random_operations() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t = rt.block_on(fresh());
    let pg = rt.block_on(t.sql());
    let mut runner = TestRunner::new(Config { cases: 64, failure_persistence: None, ..Config::default() });
    let result = runner.run(&prop::collection::vec(op(), 1..40), |ops| rt.block_on(check(&t, &pg, ops)));
    if let Err(e) = result {
        panic!("{e}");
    }
}
