//! Operator cancels: a job that is not running is cancelled at once; a
//! running one is flagged, and the flag decides how its attempt ends.

use std::time::Duration;

use skiplock::{CancelResult, Finish, JobState, Outcome};

use crate::support::fresh;

const LEASE: Duration = Duration::from_secs(60);

/// The handler may never see the cancel (no NOTIFY behind PgBouncer, the
/// next heartbeat ten seconds off) and fail, snooze or be released at
/// shutdown: the job still ends cancelled, not back in the queue. Only a
/// completion, which means the work was done, wins over the flag.
#[tokio::test]
async fn a_cancel_requested_while_running_wins_over_fail_snooze_and_release() {
    let t = fresh().await;
    let outcomes = [
        Outcome::Failed { error: "boom".into(), retry_in: Duration::ZERO },
        Outcome::Snoozed(Duration::ZERO),
        Outcome::Released,
        Outcome::Completed,
    ];
    for outcome in outcomes {
        let id = t.seed("default", "k", 1).await[0];
        let job = t.client.claim("default", 1, LEASE, "w").await.unwrap().pop().unwrap();
        assert_eq!(t.client.cancel(&[id]).await.unwrap(), vec![(id, CancelResult::Cancelling)]);
        let want = if outcome == Outcome::Completed { JobState::Completed } else { JobState::Cancelled };
        let r = t.client.finish(&[Finish { lease: job.lease, outcome: outcome.clone() }]).await.unwrap();
        assert_eq!(r.applied, vec![(id, want)], "{outcome:?}");
        let row = t.client.job(id).await.unwrap().unwrap();
        assert_eq!(row.state, want, "{outcome:?}");
        if want == JobState::Cancelled {
            let last = &row.errors.last().expect("the history says why").error;
            let expected = if matches!(outcome, Outcome::Failed { .. }) { "boom" } else { "cancelled while running" };
            assert_eq!(last, expected, "{outcome:?}");
        }
    }
    assert_eq!(t.count("jobs", "true").await, 0, "none went back to the queue");
}

/// An id given twice is answered once: one job, one cancel, one result.
#[tokio::test]
async fn an_id_given_twice_is_cancelled_and_answered_once() {
    let t = fresh().await;
    let ids = t.seed("default", "k", 2).await;
    let got = t.client.cancel(&[ids[0], ids[1], ids[0], 999_999_999]).await.unwrap();
    assert_eq!(
        got,
        vec![
            (ids[0], CancelResult::Cancelled),
            (ids[1], CancelResult::Cancelled),
            (999_999_999, CancelResult::NotFound)
        ]
    );
}
