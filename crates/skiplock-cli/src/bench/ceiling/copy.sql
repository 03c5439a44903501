-- Bulk enqueue: binary COPY of (queue, kind, args) rows.
COPY skiplock_bench_ceiling.jobs (queue, kind, args) FROM STDIN (FORMAT binary)
