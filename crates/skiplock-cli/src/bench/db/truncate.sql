-- Empties the benchmark's queue between runs: fresh files, no dead rows.
TRUNCATE skiplock_bench.jobs, skiplock_bench.jobs_archive
