-- Queues with jobs waiting to run now (available) that no live worker
-- serves (each workers-registry row names the queues its process serves),
-- and that are not paused: the queue, and its waiting jobs counted up to $1.
-- The distinct queues come from jobs_claim_idx, one probe per queue (a skip
-- scan), never a scan of the hot table; the counts stop at $1.
WITH RECURSIVE waiting AS (
    (SELECT queue FROM {schema}.jobs WHERE state = 'available' ORDER BY queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM {schema}.jobs j
            WHERE j.state = 'available' AND j.queue > w.queue
            ORDER BY j.queue LIMIT 1)
    FROM waiting w
    WHERE w.queue IS NOT NULL
)
SELECT w.queue,
       -- In the claim's order, so that the count walks jobs_claim_idx
       -- (unordered, the planner would rather scan the table until $1).
       (SELECT count(*) FROM (SELECT 1 FROM {schema}.jobs j
                              WHERE j.state = 'available' AND j.queue = w.queue
                              ORDER BY j.priority, j.run_at, j.id
                              LIMIT $1) c) AS jobs
FROM waiting w
WHERE w.queue IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM {schema}.workers r WHERE r.expires_at > now() AND r.queues ? w.queue)
  AND NOT EXISTS (SELECT 1 FROM {schema}.queues p WHERE p.name = w.queue AND p.paused)
ORDER BY w.queue
