-- Periodic jobs' state rows: $1 names (NULL: all). With the database's
-- clock, to compare next_run_at with.
SELECT name, schedule, next_run_at, last_run_at, now() AS db_now
FROM {schema}.periodic
WHERE $1::text[] IS NULL OR name = ANY ($1::text[])
ORDER BY name
