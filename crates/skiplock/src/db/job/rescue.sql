-- Take back up to $1 running jobs whose lease expired before now(): their
-- worker is presumed dead. Each goes back to available (the next worker runs
-- it at once), or is discarded when its attempts are used up, or is cancelled
-- when an operator had asked for that. The lease loss is kept in its errors.
--
-- One exception: a job its holder never started. A worker whose claim lost
-- its answer (the server committed it, the reply never came) holds jobs it
-- does not know of; it gives them back itself once it can reach the
-- database (release_unknown.sql), but their lease may run out first. Such a
-- job was never heartbeated (its lease still ends exactly the claim's lease
-- after its attempt began, as the holder's registry entry records it) while
-- the same instance of its holder is alive (its registry entry fresh, and
-- older than the attempt): a worker alive and heartbeating extends every
-- lease it knows, so this one it never knew, and never started. It goes
-- back with its attempt given back and no error, rather than using up an
-- attempt that never ran (with one attempt, being discarded unrun). And
-- while such a holder's entry has lapsed for less than a lease (it was cut
-- off, say, and will be back, or is dead and will stay away), its
-- never-heartbeated jobs wait: taken back now they would count an attempt
-- they may never have made. A dead worker's such jobs are taken back a
-- lease later than the others.
WITH expired AS (
    SELECT j.id, j.attempt >= j.max_attempts AS exhausted, j.cancel_requested_at IS NOT NULL AS cancelling,
           EXISTS (
               SELECT 1 FROM {schema}.workers w
               WHERE w.id = j.leased_by AND w.expires_at > now() AND w.started_at <= j.attempted_at
                 AND j.lease_expires_at = j.attempted_at + w.lease_ms * interval '1 millisecond'
           ) AS unstarted
    FROM {schema}.jobs j
    WHERE j.state = 'running' AND j.lease_expires_at < now()
      AND NOT EXISTS (
          SELECT 1 FROM {schema}.workers w
          WHERE w.id = j.leased_by AND w.started_at <= j.attempted_at
            AND j.lease_expires_at = j.attempted_at + w.lease_ms * interval '1 millisecond'
            AND w.expires_at <= now() AND w.expires_at > now() - w.lease_ms * interval '1 millisecond'
      )
    ORDER BY j.lease_expires_at
    LIMIT $1
    FOR UPDATE OF j SKIP LOCKED
),
finished AS (
    DELETE FROM {schema}.jobs j
    USING expired e
    WHERE j.id = e.id AND (e.cancelling OR (e.exhausted AND NOT e.unstarted))
    RETURNING j.*, CASE WHEN e.cancelling THEN 'cancelled' ELSE 'discarded' END AS next
),
archived AS (
    INSERT INTO {schema}.jobs_archive
        (id, run_at, created_at, attempted_at, finished_at, lease_token, state, attempt,
         max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, run_at, created_at, attempted_at, now(), lease_token, next::{schema}.job_state,
           attempt, max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by,
           errors || jsonb_build_array(jsonb_build_object(
               'attempt', attempt, 'at', now(),
               'error', 'lease expired: worker ' || coalesce(leased_by, '?') || ' stopped heartbeating')),
           tags, meta
    FROM finished
),
requeued AS (
    UPDATE {schema}.jobs j
    SET state = 'available',
        run_at = now(),
        attempt = CASE WHEN e.unstarted THEN j.attempt - 1 ELSE j.attempt END,
        errors = CASE WHEN e.unstarted THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempt, 'at', now(),
                          'error', 'lease expired: worker ' || coalesce(j.leased_by, '?') || ' stopped heartbeating'))
                 END,
        lease_token = NULL,
        lease_expires_at = NULL
    FROM expired e
    WHERE j.id = e.id AND NOT (e.cancelling OR (e.exhausted AND NOT e.unstarted))
    RETURNING j.id, j.queue
),
notified AS (
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM requeued) q
),
-- How many were taken back this minute, for `Client::health` (outcome
-- `rescued` in the per-minute statistics, added to the merged row; readers
-- of the outcomes they know skip it). In this transaction: counted once.
counted AS (
    INSERT INTO {schema}.stats_minute AS s (minute, worker, queue, kind, outcome, n)
    SELECT date_trunc('minute', now()), '', '', '', 'rescued', count(*)
    FROM expired
    HAVING count(*) > 0
    ON CONFLICT (minute, worker, queue, kind, outcome) DO UPDATE SET n = s.n + EXCLUDED.n
)
SELECT id, next AS state FROM finished
UNION ALL
SELECT id, 'available' FROM requeued, notified
