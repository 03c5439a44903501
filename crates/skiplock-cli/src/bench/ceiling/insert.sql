-- One-by-one enqueue: one job per statement and transaction.
INSERT INTO skiplock_bench_ceiling.jobs (queue, kind, args) VALUES ($1, $2, $3)
