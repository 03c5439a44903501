-- Operator cancel of the jobs $1. A job that is not running moves to the
-- archive as cancelled at once. A running job is flagged and its worker told
-- on the control channel; it ends as cancelled when its handler stops.
-- Jobs already finished (or unknown) are not returned.
WITH input AS (
    SELECT DISTINCT unnest($1::bigint[]) AS id
),
finished AS (
    DELETE FROM {schema}.jobs j
    USING input i
    WHERE j.id = i.id AND j.state <> 'running'
    RETURNING j.*
),
archived AS (
    INSERT INTO {schema}.jobs_archive
        (id, run_at, created_at, attempted_at, finished_at, lease_token, state, attempt,
         max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, run_at, created_at, attempted_at, now(), lease_token, 'cancelled',
           attempt, max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta
    FROM finished
),
flagged AS (
    UPDATE {schema}.jobs j
    SET cancel_requested_at = coalesce(j.cancel_requested_at, now())
    FROM input i
    WHERE j.id = i.id AND j.state = 'running'
    RETURNING j.id
),
notified AS (
    SELECT count(pg_notify('{schema_name}_control', json_build_object('cancel', f.id)::text)) AS n
    FROM flagged f
)
SELECT id, 'cancelled' AS state FROM finished
UNION ALL
SELECT id, 'cancelling' FROM flagged, notified
