-- end of a drain: finish the last batch each worker holds, and anything left available
SET search_path = q;
WITH f AS (DELETE FROM jobs RETURNING *)
INSERT INTO jobs_archive (id, run_at, created_at, attempted_at, finished_at, lease_token, state, attempt,
        max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta)
SELECT id, run_at, created_at, attempted_at, now(), lease_token, 'completed', attempt, max_attempts,
       timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta FROM f;
