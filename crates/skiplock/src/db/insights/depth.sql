-- The queue depth the leader counted last (maintenance/stats.rs): one row
-- per (queue, state) with the age of the queue's oldest available job at
-- the time of the count, each with when it was counted and the database's
-- clock; a single row of NULL queue when the hot table was empty; no row
-- at all when it was never counted. No parameters.
SELECT d.queue, d.state, d.n,
       extract(epoch FROM c.counted_at - d.oldest_run_at)::float8 AS oldest_secs,
       c.counted_at, c.took_ms, now() AS db_now
FROM {schema}.queue_depth_counted c
LEFT JOIN {schema}.queue_depth d ON true
ORDER BY d.queue, d.state
