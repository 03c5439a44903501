-- invariant sampler (per-priority marks): committed available jobs below their priority's mark
INSERT INTO q.violations (n)
SELECT count(*) FROM q.jobs j JOIN q.marks_get('default') m ON m.priority = j.priority
WHERE j.state = 'available' AND j.queue = 'default' AND (j.run_at, j.id) < (m.run_at, m.id);
SELECT pg_sleep(0.05);
