-- The leader's count of the hot table by queue and state, with each
-- queue's oldest available job, into queue_depth (rows of states that
-- emptied are deleted; unchanged ones are not rewritten), stamped with the
-- time and $1, how long the previous count took in milliseconds. One GROUP
-- BY of the hot table, by one process, every few seconds: page views read
-- the result. Returns the (queue, state) pairs counted.
WITH counted AS (
    SELECT queue, state::text AS state, count(*) AS n,
           min(run_at) FILTER (WHERE state = 'available') AS oldest
    FROM {schema}.jobs
    GROUP BY queue, state
),
gone AS (
    DELETE FROM {schema}.queue_depth d
    WHERE NOT EXISTS (SELECT 1 FROM counted c WHERE c.queue = d.queue AND c.state = d.state)
),
upserted AS (
    INSERT INTO {schema}.queue_depth AS d (queue, state, n, oldest_run_at)
    SELECT queue, state, n, oldest FROM counted
    ON CONFLICT (queue, state) DO UPDATE
    SET n = EXCLUDED.n, oldest_run_at = EXCLUDED.oldest_run_at
    WHERE (d.n, d.oldest_run_at) IS DISTINCT FROM (EXCLUDED.n, EXCLUDED.oldest_run_at)
),
stamped AS (
    INSERT INTO {schema}.queue_depth_counted AS c (one, counted_at, took_ms)
    VALUES (true, now(), $1)
    ON CONFLICT (one) DO UPDATE SET counted_at = now(), took_ms = EXCLUDED.took_ms
)
SELECT count(*)::bigint AS pairs FROM counted
