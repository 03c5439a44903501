-- The scheduler: make up to $1 scheduled or retryable jobs whose run_at has
-- come available, and wake their queues. Returns one row per queue touched,
-- plus the run_at of the next job still waiting and the database's clock (so
-- the scheduler can sleep until then).
WITH due AS (
    SELECT id
    FROM {schema}.jobs
    WHERE state IN ('scheduled', 'retryable') AND run_at <= now()
    ORDER BY run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
),
moved AS (
    UPDATE {schema}.jobs j
    SET state = 'available'
    FROM due
    WHERE j.id = due.id
    RETURNING j.queue
),
per_queue AS (
    SELECT queue, count(*) AS n, pg_notify('{schema_name}_insert', queue) AS notified
    FROM moved
    GROUP BY queue
)
SELECT queue, n,
       (SELECT min(run_at) FROM {schema}.jobs
        WHERE state IN ('scheduled', 'retryable') AND run_at > now()) AS next_run_at,
       now() AS db_now
FROM per_queue
UNION ALL
SELECT NULL, 0,
       (SELECT min(run_at) FROM {schema}.jobs
        WHERE state IN ('scheduled', 'retryable') AND run_at > now()),
       now()
WHERE NOT EXISTS (SELECT 1 FROM per_queue)
