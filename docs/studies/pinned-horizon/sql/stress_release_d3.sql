WITH claimed AS (
    UPDATE q.jobs j
    SET state = 'running', attempt = j.attempt + 1, attempted_at = now(),
        lease_token = nextval('q.lease_token_seq'), lease_expires_at = now() + interval '30 s',
        leased_by = 'w' || pg_backend_pid()
    WHERE j.id = ANY (ARRAY (
        WITH mk AS MATERIALIZED (  -- the queue's low-water mark (see mark.sql)
            SELECT m.priority, m.run_at, m.id FROM q.queue_marks m
            WHERE m.queue = 'default'
              AND m.seq >= (SELECT a.seq FROM q.queue_marks a WHERE a.queue = 'default' AND a.is_advance
                            ORDER BY a.seq DESC LIMIT 1)
            ORDER BY m.priority, m.run_at, m.id LIMIT 1)
        SELECT id FROM q.jobs
        WHERE state = 'available' AND queue = 'default'
          AND (priority, run_at, id) >= ((SELECT priority FROM mk), (SELECT run_at FROM mk), (SELECT id FROM mk))
        ORDER BY priority, run_at, id
        LIMIT 5
        FOR UPDATE SKIP LOCKED))
    RETURNING j.id, j.lease_token
)
SELECT coalesce(array_agg(id), '{}') AS rids, coalesce(array_agg(lease_token), '{}') AS rtoks FROM claimed
\gset
WITH rel AS (
    UPDATE q.jobs j SET state = 'available', run_at = now(), attempt = j.attempt - 1,
                        lease_token = NULL, lease_expires_at = NULL , slot = q.current_slot()  -- moved to the current generation
    WHERE j.id = ANY (:rids::bigint[]) AND j.lease_token = ANY (:rtoks::bigint[])
    RETURNING j.queue, j.priority, j.run_at, j.id
), lo AS (
    SELECT DISTINCT ON (queue) queue, priority, run_at, id FROM rel ORDER BY queue, priority, run_at, id
)
SELECT count(q.mark_lower(queue, priority, run_at, id)) FROM lo;
