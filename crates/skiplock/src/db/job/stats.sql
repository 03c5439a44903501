-- Job counts by queue and state (hot table and archive), with the age of the
-- oldest available job per queue.
SELECT queue, state::text AS state, count(*) AS n,
       extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'available'))::float8 AS oldest_available_secs
FROM {schema}.jobs
GROUP BY queue, state
UNION ALL
SELECT queue, state::text, count(*), NULL
FROM {schema}.jobs_archive
GROUP BY queue, state
ORDER BY 1, 2
