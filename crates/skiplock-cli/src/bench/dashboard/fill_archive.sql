-- Archives $2 finished jobs with ids from $1, in one server-side statement,
-- all finished today (today's dated partition): 90% completed, 5% cancelled,
-- 5% discarded; ten queues, one of them rare (0.1%); twenty kinds; one job in
-- 500 tagged vip; args {"i": id, "user": id % 1000}.
INSERT INTO skiplock_bench.jobs_archive
    (id, run_at, created_at, attempted_at, finished_at, state, attempt, max_attempts, priority, queue, kind,
     args, errors, tags, meta)
SELECT g, now() - interval '2 hours', now() - interval '2 hours', now() - interval '2 hours',
       date_trunc('day', now(), 'UTC') + (g % 3600) * interval '1 second',
       CASE WHEN g % 20 = 0 THEN 'discarded' WHEN g % 20 = 1 THEN 'cancelled' ELSE 'completed' END::skiplock_bench.job_state,
       1, 20, 0, CASE WHEN g % 1000 = 7 THEN 'rare' ELSE 'q' || (g % 9) END, 'bench.k' || (g % 20),
       jsonb_build_object('i', g, 'user', g % 1000),
       CASE WHEN g % 20 = 0 THEN '[{"attempt": 1, "at": "2025-01-01T00:00:00Z", "error": "bench: failed"}]'::jsonb ELSE '[]' END,
       CASE WHEN g % 500 = 0 THEN '{vip}'::text[] ELSE '{}' END, '{}'
FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS g
