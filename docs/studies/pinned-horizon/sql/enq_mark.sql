-- the same with the mark protocol (D1): lower the queue's mark in the same statement
WITH inserted AS (
    INSERT INTO q.jobs (queue, kind, args, priority, run_at, state, tags, meta)
    VALUES ('default', 'bench.work', '{"i": 1, "payload": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}', 0, now(), 'available', '{bench}', '{}')
    RETURNING id, queue, priority, run_at
)
SELECT id, (SELECT count(q.mark_lower(queue, priority, run_at, id)) FROM inserted) FROM inserted;
