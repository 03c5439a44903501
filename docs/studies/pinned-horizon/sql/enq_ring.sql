-- insert_one.sql-like single enqueue (D0)
INSERT INTO q.jobs (queue, kind, args, priority, run_at, state, tags, meta)
VALUES ('default', 'bench.work', '{"i": 1, "payload": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}', 0, now(), 'available', '{bench}', '{}')
RETURNING id;
