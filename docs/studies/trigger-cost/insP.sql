BEGIN;
SELECT pg_advisory_xact_lock_shared(hashtextextended('skiplock.mark.skiplock.default', 0)), set_config('skiplock.lowered', 'yes', true);
WITH i AS (INSERT INTO skiplock.jobs (kind) VALUES ('k') RETURNING queue, priority, run_at, id),
low AS (INSERT INTO skiplock.queue_marks (queue, is_advance, priority, run_at, id)
        SELECT i.queue, false, i.priority, i.run_at, i.id FROM i
        WHERE EXISTS (SELECT 1 FROM (SELECT a.run_ats[i.priority + 1] AS run_at, a.ids[i.priority + 1] AS id
              FROM skiplock.queue_marks a WHERE a.queue = i.queue AND a.is_advance ORDER BY a.seq DESC LIMIT 1) m
              WHERE (i.run_at, i.id) < (m.run_at, m.id)))
SELECT id FROM i;
COMMIT;
