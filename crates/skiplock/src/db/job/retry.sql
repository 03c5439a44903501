-- Operator retry of the jobs $1. A finished job (completed, cancelled,
-- discarded) moves back from the archive to the hot table as available, with
-- at least one attempt left; a scheduled or retryable job becomes available
-- now. Running jobs and unknown ids are not returned. A unique key taken by
-- another unfinished job fails the whole statement (SQLSTATE 23505).
WITH input AS (
    SELECT DISTINCT unnest($1::bigint[]) AS id
),
revived AS (
    DELETE FROM {schema}.jobs_archive a
    USING input i
    WHERE a.id = i.id
    RETURNING a.*
),
reinserted AS (
    INSERT INTO {schema}.jobs
        (id, run_at, created_at, attempted_at, state, attempt, max_attempts, timeout_ms, priority, queue,
         kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, now(), created_at, attempted_at, 'available', attempt, greatest(max_attempts, attempt + 1), timeout_ms,
           priority, queue, kind, args, unique_key, leased_by, errors, tags, meta
    FROM revived
    RETURNING id, queue
),
hurried AS (
    UPDATE {schema}.jobs j
    SET state = 'available', run_at = now()
    FROM input i
    WHERE j.id = i.id AND j.state IN ('scheduled', 'retryable')
    RETURNING j.id, j.queue
),
notified AS (
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT queue FROM reinserted UNION SELECT queue FROM hurried) q
)
SELECT id FROM reinserted, notified
UNION ALL
SELECT id FROM hurried, notified
