-- Asks the leader to enqueue a run of periodic job $1 now: its next run is
-- brought forward to now (the leader's next pass, within a second, enqueues
-- it as usual, once, and goes on with the schedule). Returns its name if it
-- exists and is not paused.
UPDATE {schema}.periodic
SET next_run_at = least(next_run_at, now()), updated_at = now()
WHERE name = $1 AND NOT paused
RETURNING name
