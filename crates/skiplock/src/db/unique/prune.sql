-- Deletes unique keys that no longer hold, looking at up to $2 keys after $1
-- (in key order; the pruner walks the table across passes): expired ones,
-- those whose job finished in a state outside the key's final_states, and
-- those whose job is gone (dropped by retention). Returns the last key
-- looked at (NULL at the end of the table) and how many were deleted.
-- The delete re-checks job_id, so a key taken over meanwhile is kept.
WITH looked AS (
    SELECT key, job_id, final_states, expires_at
    FROM {schema}.unique_keys
    WHERE key > $1
    ORDER BY key
    LIMIT $2
),
dead AS (
    SELECT l.key, l.job_id
    FROM looked l
    WHERE l.expires_at <= now()
       OR NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.id = l.job_id)
          AND NOT EXISTS (SELECT 1 FROM {schema}.jobs_archive a
                          WHERE a.id = l.job_id AND a.state = ANY (l.final_states))
),
deleted AS (
    DELETE FROM {schema}.unique_keys u
    USING dead d
    WHERE u.key = d.key AND u.job_id = d.job_id
    RETURNING 1
)
SELECT (SELECT max(key) FROM looked) AS last, (SELECT count(*) FROM deleted) AS n
