-- Per-minute statistics from $1 on: every row, the workers' own and the
-- leader's merged ones (the reader adds them up per minute, queue, kind and
-- outcome). Backed by the primary key, which leads with the minute.
SELECT minute, queue, kind, outcome, n, queue_ms
FROM {schema}.stats_minute
WHERE minute >= $1
ORDER BY minute
