-- Before a timed run: the hot table's visibility map and statistics as
-- autovacuum would leave them, whatever it had time to do.
VACUUM (ANALYZE) skiplock_bench.jobs
