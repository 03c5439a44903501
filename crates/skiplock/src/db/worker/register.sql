-- Takes the workers-registry row of worker id $1 for process instance $2
-- (host $3, pid $4, queues $5 as {"queue": concurrency}) for $6 ms, its
-- jobs' lease, if no live process holds it: the row is absent, expired, or
-- already this instance's. Returns a row only when this instance holds the
-- id now.
INSERT INTO {schema}.workers AS w (id, instance, host, pid, queues, lease_ms, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, now() + $6 * interval '1 millisecond')
ON CONFLICT (id) DO UPDATE
SET instance = EXCLUDED.instance, host = EXCLUDED.host, pid = EXCLUDED.pid, queues = EXCLUDED.queues,
    lease_ms = EXCLUDED.lease_ms, running = 0,
    started_at = CASE WHEN w.instance = EXCLUDED.instance THEN w.started_at ELSE now() END,
    seen_at = now(), expires_at = EXCLUDED.expires_at
WHERE w.expires_at < now() OR w.instance = EXCLUDED.instance
RETURNING w.instance
