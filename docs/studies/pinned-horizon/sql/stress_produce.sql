-- one enqueue of a random priority, sometimes with a run_at in the past (a key below the mark)
\set p random(0, 3)
\set back random(0, 3000)
WITH ins AS (
    INSERT INTO q.jobs (queue, kind, args, priority, run_at, state)
    VALUES ('default', 'stress', '{}', :p, now() - :back * interval '1 ms', 'available')
    RETURNING queue, priority, run_at, id
), pr AS (INSERT INTO q.produced SELECT id FROM ins)
SELECT count(q.mark_lower(queue, priority, run_at, id)) FROM ins;
