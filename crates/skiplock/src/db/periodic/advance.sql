-- Compare-and-set of periodic job $1's next run from $2 to $3, recording $4
-- as the last run enqueued (NULL: none this time). Returns a row only if
-- next_run_at was still $2 and the job is not paused: the caller then
-- inserts the runs in the same transaction. A concurrent caller that read
-- the same $2 waits for this row's lock, finds next_run_at changed, and
-- inserts nothing. A paused job's next run moves on all the same, so that
-- resuming it does not back-fill the runs it skipped (migration 0005).
WITH advanced AS (
    UPDATE {schema}.periodic
    SET next_run_at = $3,
        last_run_at = CASE WHEN paused THEN last_run_at ELSE coalesce($4, last_run_at) END,
        updated_at = now()
    WHERE name = $1 AND next_run_at = $2
    RETURNING name, paused
)
SELECT name FROM advanced WHERE NOT paused
