-- invariant sampler: committed available jobs below the committed mark (one snapshot). Must be 0.
INSERT INTO q.violations (n)
SELECT count(*) FROM q.jobs j, q.mark_get('default') m
WHERE j.state = 'available' AND j.queue = 'default' AND (j.priority, j.run_at, j.id) < (m.priority, m.run_at, m.id);
SELECT pg_sleep(0.05);
