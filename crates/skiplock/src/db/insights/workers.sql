-- The live worker processes of the workers registry (migration 0004), with
-- whether each leads the maintenance now. No parameters.
SELECT w.id, w.host, w.pid, w.queues, w.running, w.lease_ms, w.started_at, w.seen_at, w.expires_at,
       coalesce(l.leader_id = w.id AND l.expires_at > now(), false) AS leader
FROM {schema}.workers w
LEFT JOIN {schema}.leader l ON l.name = 'default'
WHERE w.expires_at > now()
ORDER BY w.id
