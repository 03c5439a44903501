-- Design (a'), per-priority low-water marks: one mark per (queue, priority), key (run_at, id).
-- Same protocol as mark.sql (L1(q) shared for lowerers, try-exclusive for the advancer, fresh
-- snapshot after the lock), but a priority's progress survives a lowering of another priority,
-- and a new round of jobs of priority p lands just after p's mark instead of behind the dead
-- entries of every earlier round of p.
-- Storage: insert-only log. An 'advance' row carries all ten marks (arrays, index = priority+1);
-- a 'lower' row carries one priority's key. mark(q,p) = least(newest advance's key for p,
-- keys of p's lower rows newer than that advance).
SET search_path = q;
CREATE SEQUENCE queue_marks_seq CACHE 1;
CREATE TABLE queue_marks (
    queue      text NOT NULL,
    seq        bigint NOT NULL DEFAULT nextval('q.queue_marks_seq'),
    is_advance boolean NOT NULL,
    run_ats    timestamptz[],     -- advance rows
    ids        bigint[],
    priority   smallint,          -- lower rows
    run_at     timestamptz,
    id         bigint
);
CREATE INDEX queue_marks_idx ON queue_marks (queue, seq);
CREATE INDEX queue_marks_advance_idx ON queue_marks (queue, seq) WHERE is_advance;
-- lower rows are rare: with their own partial index, "lower rows newer than the advance" is an
-- index probe whatever the planner guesses for seq > $x (a sequential scan of the log, which
-- grows by one row per advance, cost 2.5 ms per claim at 6,000 rows)
CREATE INDEX queue_marks_lower_idx ON queue_marks (queue, seq) WHERE NOT is_advance;
INSERT INTO queue_marks (queue, is_advance, run_ats, ids)
VALUES ('default', true, array_fill('-infinity'::timestamptz, ARRAY[10]), array_fill(0::bigint, ARRAY[10]));

CREATE FUNCTION mark_lock_key(q text) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT hashtextextended('skiplock.mark.' || q, 0) $$;

-- all ten marks of q (priority, run_at, id), priority order
CREATE FUNCTION marks_get(q text) RETURNS TABLE (priority smallint, run_at timestamptz, id bigint)
LANGUAGE sql STABLE AS $$
    WITH adv AS (SELECT a.seq, a.run_ats, a.ids FROM q.queue_marks a
                 WHERE a.queue = q AND a.is_advance ORDER BY a.seq DESC LIMIT 1),
    low AS (SELECT DISTINCT ON (l.priority) l.priority, l.run_at, l.id FROM q.queue_marks l
            WHERE l.queue = q AND l.seq > (SELECT seq FROM adv) AND NOT l.is_advance
            ORDER BY l.priority, l.run_at, l.id)
    SELECT p::smallint,
           CASE WHEN low.id IS NOT NULL AND (low.run_at, low.id) < (adv.run_ats[p + 1], adv.ids[p + 1]) THEN low.run_at ELSE adv.run_ats[p + 1] END,
           CASE WHEN low.id IS NOT NULL AND (low.run_at, low.id) < (adv.run_ats[p + 1], adv.ids[p + 1]) THEN low.id ELSE adv.ids[p + 1] END
    FROM adv CROSS JOIN generate_series(0, 9) p LEFT JOIN low ON low.priority = p
    ORDER BY p
$$;

CREATE FUNCTION mark_lower(q text, p smallint, r timestamptz, i bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE m record;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(q.mark_lock_key(q));
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        INSERT INTO q.queue_marks (queue, is_advance, priority, run_at, id) VALUES (q, false, p, r, i);
        RETURN;
    END IF;
    SELECT * INTO m FROM q.marks_get(q) g WHERE g.priority = p;
    IF m.id IS NULL OR (r, i) < (m.run_at, m.id) THEN
        INSERT INTO q.queue_marks (queue, is_advance, priority, run_at, id) VALUES (q, false, p, r, i);
    END IF;
END $$;

CREATE FUNCTION mark_advance(q text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE m record; n record; ras timestamptz[] := '{}'; ids bigint[] := '{}'; moved boolean := false;
BEGIN
    IF NOT pg_try_advisory_xact_lock(q.mark_lock_key(q)) THEN
        RETURN false;
    END IF;
    FOR m IN SELECT * FROM q.marks_get(q) LOOP
        SELECT j.run_at, j.id INTO n FROM q.jobs j
        WHERE j.state = 'available' AND j.queue = q AND j.priority = m.priority
          AND (j.run_at, j.id) >= (m.run_at, m.id)
        ORDER BY j.run_at, j.id LIMIT 1;
        IF n.id IS NOT NULL AND (n.run_at, n.id) > (m.run_at, m.id) THEN
            ras := ras || n.run_at; ids := ids || n.id; moved := true;
        ELSE
            ras := ras || m.run_at; ids := ids || m.id;
        END IF;
    END LOOP;
    IF moved THEN
        INSERT INTO q.queue_marks (queue, is_advance, run_ats, ids) VALUES (q, true, ras, ids);
    END IF;
    RETURN moved;
END $$;
