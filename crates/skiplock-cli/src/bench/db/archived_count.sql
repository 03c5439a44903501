-- Finished jobs: rows in the archive.
SELECT count(*) FROM skiplock_bench.jobs_archive
