-- The leader's merge of the workers' statistics rows of minutes before $1,
-- at most $2 rows: each (minute, queue, kind, outcome) is added to the one
-- merged row (worker = '') and to its hour in stats_hour, and the workers'
-- rows are deleted, in one statement, so each is counted exactly once.
-- Returns how many rows were merged.
WITH picked AS (
    SELECT minute, worker, queue, kind, outcome
    FROM {schema}.stats_minute
    WHERE worker <> '' AND minute < $1
    ORDER BY minute
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
moved AS (
    DELETE FROM {schema}.stats_minute s
    USING picked p
    WHERE s.minute = p.minute AND s.worker = p.worker AND s.queue = p.queue AND s.kind = p.kind
      AND s.outcome = p.outcome
    RETURNING s.minute, s.queue, s.kind, s.outcome, s.n, s.queue_ms
),
counts AS (
    SELECT minute, queue, kind, outcome, sum(n)::bigint AS n
    FROM moved
    GROUP BY 1, 2, 3, 4
),
buckets AS (
    SELECT m.minute, m.queue, m.kind, m.outcome, b.i, sum(b.c)::bigint AS c
    FROM moved m, unnest(m.queue_ms) WITH ORDINALITY AS b(c, i)
    GROUP BY 1, 2, 3, 4, 5
),
merged AS (
    SELECT c.minute, c.queue, c.kind, c.outcome, c.n,
           coalesce((SELECT array_agg(b.c ORDER BY b.i) FROM buckets b
                     WHERE b.minute = c.minute AND b.queue = c.queue AND b.kind = c.kind
                       AND b.outcome = c.outcome), '{}'::bigint[]) AS queue_ms
    FROM counts c
),
minutes AS (
    INSERT INTO {schema}.stats_minute AS s (minute, worker, queue, kind, outcome, n, queue_ms)
    SELECT minute, '', queue, kind, outcome, n, queue_ms FROM merged
    ON CONFLICT (minute, worker, queue, kind, outcome) DO UPDATE
    SET n = s.n + EXCLUDED.n, queue_ms = {schema}.hist_add(s.queue_ms, EXCLUDED.queue_ms)
),
hour_counts AS (
    SELECT to_timestamp(floor(extract(epoch FROM minute) / 3600) * 3600) AS hour, queue, kind, outcome,
           sum(n)::bigint AS n
    FROM moved
    GROUP BY 1, 2, 3, 4
),
hour_buckets AS (
    SELECT to_timestamp(floor(extract(epoch FROM m.minute) / 3600) * 3600) AS hour, m.queue, m.kind, m.outcome,
           b.i, sum(b.c)::bigint AS c
    FROM moved m, unnest(m.queue_ms) WITH ORDINALITY AS b(c, i)
    GROUP BY 1, 2, 3, 4, 5
),
hours AS (
    INSERT INTO {schema}.stats_hour AS h (hour, queue, kind, outcome, n, queue_ms)
    SELECT c.hour, c.queue, c.kind, c.outcome, c.n,
           coalesce((SELECT array_agg(b.c ORDER BY b.i) FROM hour_buckets b
                     WHERE b.hour = c.hour AND b.queue = c.queue AND b.kind = c.kind
                       AND b.outcome = c.outcome), '{}'::bigint[])
    FROM hour_counts c
    ON CONFLICT (hour, queue, kind, outcome) DO UPDATE
    SET n = h.n + EXCLUDED.n, queue_ms = {schema}.hist_add(h.queue_ms, EXCLUDED.queue_ms)
)
SELECT count(*)::bigint AS merged FROM moved
