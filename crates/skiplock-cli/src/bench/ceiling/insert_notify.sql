-- One-by-one enqueue with a wake-up: the INSERT and a NOTIFY in one statement
-- and transaction, as skiplock's insert does. Shows what NOTIFY costs: a
-- notifying commit holds a database-wide lock until its WAL is flushed.
WITH job AS (
    INSERT INTO skiplock_bench_ceiling.jobs (queue, kind, args) VALUES ($1, $2, $3)
    RETURNING queue
)
SELECT pg_notify('skiplock_bench_ceiling_insert', queue) FROM job
