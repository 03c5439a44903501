-- the leader's advancer: every 10 ms (generated file repeats these lines)
SELECT q.mark_advance('default');
SELECT pg_sleep(0.01);
