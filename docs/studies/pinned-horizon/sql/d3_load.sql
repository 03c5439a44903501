-- enqueue_many with the mark protocol: insert, then lower the mark to the batch's smallest key
SET search_path = q;
WITH ins AS (
    INSERT INTO jobs (queue, kind, args, priority, state, tags, meta)
    SELECT 'default', 'bench.work', jsonb_build_object('i', g, 'user', 'user' || g || '@example.com', 'payload', repeat('x', 40)),
           (g % 4)::smallint, 'available', '{bench,study}', '{"src":"pgbench"}'
    FROM generate_series(1, :n) g
    RETURNING queue, priority, run_at, id
), lo AS (
    SELECT DISTINCT ON (queue) queue, priority, run_at, id FROM ins ORDER BY queue, priority, run_at, id
)
SELECT count(mark_lower(queue, priority, run_at, id)) FROM lo;
