-- One worker round trip: finish the previous batch (DELETE + INSERT into the archive,
-- fenced on (id, lease_token)) and claim the next 10 (UPDATE ... WHERE id = ANY(ARRAY(SELECT ... SKIP LOCKED))).
-- Partitioned hot table: the fence is written with arrays, not a join with unnest (the join
-- planned as a hash join over a sequential scan of the partitions). Tokens are unique, so
-- id = ANY(ids) AND lease_token = ANY(toks) matches exactly the pairs.
WITH finished AS (
    DELETE FROM q.jobs j
    WHERE j.id = ANY (:ids::bigint[]) AND j.lease_token = ANY (:toks::bigint[])
    RETURNING j.*
),
archived AS (
    INSERT INTO q.jobs_archive (id, run_at, created_at, attempted_at, finished_at, lease_token, state, attempt,
        max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, run_at, created_at, attempted_at, now(), lease_token, 'completed', attempt, max_attempts,
           timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta
    FROM finished
),
claimed AS (
    UPDATE q.jobs j
    SET state = 'running', attempt = j.attempt + 1, attempted_at = now(),
        lease_token = nextval('q.lease_token_seq'), lease_expires_at = now() + interval '30 s',
        leased_by = 'w' || pg_backend_pid()
    WHERE j.id = ANY (ARRAY (
        -- per priority, in priority order: the available jobs at or above that priority's mark;
        -- a nested loop pulled lazily by the LIMIT, so only the rows returned are locked
        SELECT c.id
        FROM (SELECT * FROM q.marks_get('default')) mk
        CROSS JOIN LATERAL (
            SELECT jj.id FROM q.jobs jj
            WHERE jj.state = 'available' AND jj.queue = 'default' AND jj.priority = mk.priority
              AND (jj.run_at, jj.id) >= (mk.run_at, mk.id)
            ORDER BY jj.run_at, jj.id
            LIMIT 10
            FOR UPDATE SKIP LOCKED) c
        LIMIT 10))
    RETURNING j.id, j.lease_token
)
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(lease_token), '{}') AS toks FROM claimed
\gset
