-- Empties the ceiling's queue and archive between runs.
TRUNCATE skiplock_bench_ceiling.jobs, skiplock_bench_ceiling.jobs_archive
