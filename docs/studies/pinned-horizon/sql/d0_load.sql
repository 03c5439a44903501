-- load :n jobs of queue 'default', priorities 0..3 mixed, in one statement (enqueue_many-like)
SET search_path = q;
INSERT INTO jobs (queue, kind, args, priority, state, tags, meta)
SELECT 'default', 'bench.work', jsonb_build_object('i', g, 'user', 'user' || g || '@example.com', 'payload', repeat('x', 40)),
       (g % 4)::smallint, 'available', '{bench,study}', '{"src":"pgbench"}'
FROM generate_series(1, :n) g;
