-- Queues $1 no-op jobs scheduled a year ahead, beside the available ones:
-- they must not slow the claim down.
INSERT INTO skiplock_bench.jobs (queue, kind, args, state, run_at)
SELECT 'bench', 'bench.noop', jsonb_build_object('i', g), 'scheduled', now() + interval '365 days'
FROM generate_series(1, $1::bigint) AS g
