-- Every queue that has jobs or a settings row, with its pause flag and counts.
WITH names AS (
    SELECT name FROM {schema}.queues
    UNION
    SELECT DISTINCT queue FROM {schema}.jobs
)
SELECT n.name,
       coalesce(q.paused, false) AS paused,
       count(j.id) FILTER (WHERE j.state = 'available') AS available,
       count(j.id) FILTER (WHERE j.state = 'running') AS running,
       count(j.id) FILTER (WHERE j.state IN ('scheduled', 'retryable')) AS waiting
FROM names n
LEFT JOIN {schema}.queues q ON q.name = n.name
LEFT JOIN {schema}.jobs j ON j.queue = n.name
GROUP BY n.name, q.paused
ORDER BY n.name
