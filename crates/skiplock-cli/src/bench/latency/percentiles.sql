-- Enqueue-to-start latency of every finished benchmark job in milliseconds,
-- by the database's clock: from created_at (the enqueueing transaction's
-- start, so its commit is included) to attempted_at (the claim's start).
SELECT count(*),
       percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY ms),
       max(ms)
FROM (
    SELECT (extract(epoch FROM attempted_at - created_at) * 1000)::float8 AS ms
    FROM skiplock_bench.jobs_archive
) latency
