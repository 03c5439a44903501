-- Queues $1 no-op jobs, available now, in one server-side statement: the
-- rows enqueue_many would write (same columns, defaults for the rest), but
-- millions of them in seconds rather than minutes of set-up.
INSERT INTO skiplock_bench.jobs (queue, kind, args)
SELECT 'bench', 'bench.noop', jsonb_build_object('i', g)
FROM generate_series(1, $1::bigint) AS g
