-- Record the outcome of many attempts in one statement, fenced by lease token.
--
-- Input, one element per job: $1 id, $2 lease_token, $3 outcome, $4 error text
-- (or NULL), $5 delay in ms (for retry and snooze). Outcomes:
--   completed | cancelled | discarded  -> row moves to jobs_archive
--   failed    -> retryable after the delay, or discarded once attempts are used up
--   snoozed   -> scheduled after the delay (available if 0); the attempt is given back
--   released  -> available now; the attempt is given back (worker shutdown)
-- A job whose token no longer matches (rescued, reclaimed, cancelled) is not
-- touched and not returned: the caller reports it as stale.
-- Every modifying CTE repeats the fence (id, lease_token, state) so that a
-- concurrent change is re-checked on the new row version (EvalPlanQual).
WITH input AS (
    SELECT *
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])
        AS t(id, lease_token, outcome, error, delay_ms)
),
decided AS (
    SELECT i.id, i.lease_token, i.error, i.delay_ms,
           CASE WHEN i.outcome = 'failed' AND j.attempt >= j.max_attempts THEN 'discarded'
                WHEN i.outcome = 'failed' THEN 'retryable'
                ELSE i.outcome END AS next
    FROM input i
    JOIN {schema}.jobs j ON j.id = i.id AND j.lease_token = i.lease_token AND j.state = 'running'
),
finished AS (
    DELETE FROM {schema}.jobs j
    USING decided d
    WHERE j.id = d.id AND j.lease_token = d.lease_token AND j.state = 'running'
      AND d.next IN ('completed', 'cancelled', 'discarded')
    RETURNING j.*, d.next, d.error
),
archived AS (
    INSERT INTO {schema}.jobs_archive
        (id, run_at, created_at, attempted_at, finished_at, lease_token, state, attempt,
         max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, run_at, created_at, attempted_at, now(), lease_token, next::{schema}.job_state,
           attempt, max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by,
           CASE WHEN error IS NULL THEN errors
                ELSE errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'at', now(), 'error', error)) END,
           tags, meta
    FROM finished
),
requeued AS (
    UPDATE {schema}.jobs j
    SET state = CASE WHEN d.next = 'retryable' AND d.delay_ms > 0 THEN 'retryable'
                     WHEN d.next = 'snoozed' AND d.delay_ms > 0 THEN 'scheduled'
                     ELSE 'available' END::{schema}.job_state,
        run_at = now() + greatest(d.delay_ms, 0) * interval '1 millisecond',
        attempt = CASE WHEN d.next IN ('snoozed', 'released') THEN j.attempt - 1 ELSE j.attempt END,
        errors = CASE WHEN d.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempt, 'at', now(), 'error', d.error)) END,
        lease_token = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL
    FROM decided d
    WHERE j.id = d.id AND j.lease_token = d.lease_token AND j.state = 'running'
      AND d.next IN ('retryable', 'snoozed', 'released')
    RETURNING j.id, j.queue, j.state::text AS state
),
notified AS (
    -- Jobs that became available now wake their queue's workers.
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM requeued WHERE state = 'available') q
)
SELECT id, next AS state FROM finished
UNION ALL
SELECT id, state FROM requeued, notified
