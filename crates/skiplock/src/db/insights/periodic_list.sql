-- Every periodic job's row, with its pause flag and the database's clock.
-- No parameters.
SELECT name, schedule, next_run_at, last_run_at, paused, now() AS db_now
FROM {schema}.periodic
ORDER BY name
