-- Unfinished jobs: rows in the hot table.
SELECT count(*) FROM skiplock_bench.jobs
