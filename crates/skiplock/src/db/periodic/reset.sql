-- Registers periodic job $1 with schedule $2 and its first run $3, or
-- restarts it from $3 when its schedule changed. A job whose row exists with
-- the same schedule is left alone. Returns its next run.
WITH upserted AS (
    INSERT INTO {schema}.periodic AS p (name, schedule, next_run_at)
    VALUES ($1, $2, $3)
    ON CONFLICT (name) DO UPDATE
    SET schedule = EXCLUDED.schedule, next_run_at = EXCLUDED.next_run_at, updated_at = now()
    WHERE p.schedule IS DISTINCT FROM EXCLUDED.schedule
    RETURNING p.next_run_at
)
SELECT next_run_at FROM upserted
UNION ALL
SELECT next_run_at FROM {schema}.periodic WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM upserted)
