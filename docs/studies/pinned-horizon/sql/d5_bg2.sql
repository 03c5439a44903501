CALL q.rotate();
SELECT pg_sleep(1);
