-- Take back up to $1 running jobs whose lease expired before now(): their
-- worker is presumed dead. Each goes back to available (the next worker runs
-- it at once), or is discarded when its attempts are used up, or is cancelled
-- when an operator had asked for that. The lease loss is kept in its errors.
WITH expired AS (
    SELECT id, attempt >= max_attempts AS exhausted, cancel_requested_at IS NOT NULL AS cancelling
    FROM {schema}.jobs
    WHERE state = 'running' AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
finished AS (
    DELETE FROM {schema}.jobs j
    USING expired e
    WHERE j.id = e.id AND (e.exhausted OR e.cancelling)
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
        errors = j.errors || jsonb_build_array(jsonb_build_object(
            'attempt', j.attempt, 'at', now(),
            'error', 'lease expired: worker ' || coalesce(j.leased_by, '?') || ' stopped heartbeating')),
        lease_token = NULL,
        lease_expires_at = NULL
    FROM expired e
    WHERE j.id = e.id AND NOT (e.exhausted OR e.cancelling)
    RETURNING j.id, j.queue
),
notified AS (
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM requeued) q
)
SELECT id, next AS state FROM finished
UNION ALL
SELECT id, 'available' FROM requeued, notified
