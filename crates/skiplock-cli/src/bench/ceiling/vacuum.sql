-- Before a timed run, as for skiplock's table.
VACUUM (ANALYZE) skiplock_bench_ceiling.jobs
