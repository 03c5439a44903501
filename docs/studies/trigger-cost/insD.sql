WITH i AS (INSERT INTO skiplock.jobs (kind) VALUES ('k') RETURNING queue, priority, run_at, id) SELECT skiplock.mark_lower(queue, priority, run_at, id) FROM i;
