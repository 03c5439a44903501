-- Every queue the dashboard shows, without reading the jobs table: those
-- with settings, those the last depth count found jobs in, and those live
-- workers serve; with the pause flag and the slots live workers give it.
-- No parameters.
WITH live AS (
    SELECT queues FROM {schema}.workers WHERE expires_at > now()
),
names AS (
    SELECT name FROM {schema}.queues
    UNION
    SELECT queue FROM {schema}.queue_depth
    UNION
    SELECT jsonb_object_keys(queues) FROM live
)
SELECT n.name,
       coalesce(q.paused, false) AS paused,
       (SELECT coalesce(sum((l.queues ->> n.name)::bigint), 0) FROM live l WHERE l.queues ? n.name)::bigint AS slots
FROM names n
LEFT JOIN {schema}.queues q ON q.name = n.name
ORDER BY n.name
