-- Pauses ($2 = true) or resumes ($2 = false) periodic job $1: while paused
-- the leader moves its next run on but enqueues nothing. Returns its name
-- if it exists.
UPDATE {schema}.periodic
SET paused = $2, updated_at = now()
WHERE name = $1
RETURNING name
