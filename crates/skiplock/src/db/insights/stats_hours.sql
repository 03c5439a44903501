-- Per-hour statistics from $1 on: the hours the leader rolled up, and the
-- workers' minutes it has not merged yet, each counted once (a merge moves
-- a minute's rows into stats_hour and out of the workers' rows in one
-- statement). The reader adds them up per hour, queue, kind and outcome.
SELECT hour, queue, kind, outcome, n, queue_ms
FROM {schema}.stats_hour
WHERE hour >= $1
UNION ALL
SELECT to_timestamp(floor(extract(epoch FROM minute) / 3600) * 3600), queue, kind, outcome, n, queue_ms
FROM {schema}.stats_minute
WHERE worker <> '' AND minute >= $1
ORDER BY 1
