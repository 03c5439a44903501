CALL q.rotate();
SELECT pg_sleep(0.01);
