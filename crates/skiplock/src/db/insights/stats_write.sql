-- A worker's statistics: $1 its worker id; one row per element of the
-- arrays $2 minutes, $3 queues, $4 kinds, $5 outcomes, $6 counts and $7
-- queue-time histograms (bigint[] literals). The counts are the worker's
-- totals for the minute so far, so writing them again changes nothing. No
-- other process writes these rows.
INSERT INTO {schema}.stats_minute AS s (minute, worker, queue, kind, outcome, n, queue_ms)
SELECT m, $1, q, k, o, n, h::bigint[]
FROM unnest($2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[]) AS u(m, q, k, o, n, h)
ON CONFLICT (minute, worker, queue, kind, outcome) DO UPDATE
SET n = EXCLUDED.n, queue_ms = EXCLUDED.queue_ms
