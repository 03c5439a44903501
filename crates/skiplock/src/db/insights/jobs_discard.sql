-- Operator discard of the jobs $1: each unfinished job that is not running
-- moves to the archive as discarded, now (a running job is left alone:
-- cancel it instead). Rows are locked in id order first, so concurrent
-- actions on overlapping sets cannot deadlock. Returns the ids discarded.
WITH locked AS (
    SELECT id FROM {schema}.jobs
    WHERE id = ANY ($1::bigint[]) AND state <> 'running'
    ORDER BY id
    FOR UPDATE
),
moved AS (
    DELETE FROM {schema}.jobs j
    USING locked l
    WHERE j.id = l.id AND j.state <> 'running'
    RETURNING j.*
),
archived AS (
    INSERT INTO {schema}.jobs_archive
        (id, run_at, created_at, attempted_at, finished_at, lease_token, state, attempt,
         max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, run_at, created_at, attempted_at, now(), lease_token, 'discarded',
           attempt, max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta
    FROM moved
)
SELECT id FROM moved ORDER BY id
