SELECT q.mark_advance('default');
SELECT pg_sleep(0.001);
