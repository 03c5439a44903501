-- Pause ($2 = true) or resume ($2 = false) queue $1. Claims check this row,
-- so a paused queue yields no more jobs from the next claim on; workers are
-- told on the control channel so a resumed queue is fetched at once.
WITH upserted AS (
    INSERT INTO {schema}.queues AS q (name, paused)
    VALUES ($1, $2)
    ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now()
    RETURNING q.name, q.paused
),
notified AS (
    SELECT count(pg_notify('{schema_name}_control',
                 json_build_object(CASE WHEN paused THEN 'pause' ELSE 'resume' END, name)::text)) AS n
    FROM upserted
)
SELECT name, paused FROM upserted, notified
