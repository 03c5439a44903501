-- Design (a): a per-queue low-water mark, kept conservative.
-- Invariant: every available job of queue q has key (priority, run_at, id) >= mark(q).
-- Storage: an insert-only log read newest-first, so updating the mark never leaves a dead
-- version in front of the one a claim reads (an UPDATEd row would: its HOT chain / index
-- entries grow by one per update while the horizon is pinned).
--   mark(q) = min key over q's rows with seq >= seq of q's newest 'advance' row.
-- Writers:
--   lowerers (enqueue, requeue, promote, rescue, retry: anything that makes a job available)
--     hold L1(q) SHARED until commit; if their key < mark they insert a 'lower' row.
--   the advancer (leader) takes L1(q) EXCLUSIVE (try-lock: never queues ahead of enqueuers),
--     then, in a new statement (fresh snapshot: every lowerer has committed or not begun), finds
--     the first available key >= mark (plain read, not SKIP LOCKED: rows of in-flight claims
--     still count) and inserts an 'advance' row with it.
-- Claims never move the mark; an aborted claim's rows stay >= mark. Lowering is always safe.
SET search_path = q;
CREATE SEQUENCE queue_marks_seq CACHE 1;
CREATE TABLE queue_marks (
    queue      text NOT NULL,
    seq        bigint NOT NULL DEFAULT nextval('q.queue_marks_seq'),
    is_advance boolean NOT NULL,
    priority   smallint NOT NULL,
    run_at     timestamptz NOT NULL,
    id         bigint NOT NULL
);
CREATE INDEX queue_marks_idx ON queue_marks (queue, seq);
-- read through two partial indexes (newest advance; lower rows after it): with (queue, seq) alone
-- "seq >= $x" was planned as a sequential scan of the log, which grows by one row per advance
CREATE INDEX queue_marks_advance_idx ON queue_marks (queue, seq) WHERE is_advance;
CREATE INDEX queue_marks_lower_idx ON queue_marks (queue, seq) WHERE NOT is_advance;
INSERT INTO queue_marks (queue, is_advance, priority, run_at, id) VALUES ('default', true, 0, '-infinity', 0);

CREATE FUNCTION mark_lock_key(q text) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT hashtextextended('skiplock.mark.' || q, 0) $$;

-- The current mark of a queue (min over the rows since the newest advance).
CREATE FUNCTION mark_get(q text, OUT priority smallint, OUT run_at timestamptz, OUT id bigint)
LANGUAGE sql STABLE AS $$
    SELECT u.priority, u.run_at, u.id FROM (
        (SELECT a.priority, a.run_at, a.id FROM q.queue_marks a
         WHERE a.queue = q AND a.is_advance ORDER BY a.seq DESC LIMIT 1)
        UNION ALL
        (SELECT l.priority, l.run_at, l.id FROM q.queue_marks l
         WHERE l.queue = q AND NOT l.is_advance
           AND l.seq > (SELECT a.seq FROM q.queue_marks a WHERE a.queue = q AND a.is_advance
                        ORDER BY a.seq DESC LIMIT 1))) u
    ORDER BY u.priority, u.run_at, u.id LIMIT 1
$$;

-- Called in the transaction that makes jobs of q available, with the smallest key it makes
-- available (one call per queue per statement). Holds L1(q) shared until commit.
CREATE FUNCTION mark_lower(q text, p smallint, r timestamptz, i bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
DECLARE m record;
BEGIN
    PERFORM pg_advisory_xact_lock_shared(q.mark_lock_key(q));
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        -- an old snapshot may not show an advance that committed before our lock: always log
        INSERT INTO q.queue_marks (queue, is_advance, priority, run_at, id) VALUES (q, false, p, r, i);
        RETURN;
    END IF;
    SELECT * INTO m FROM q.mark_get(q);   -- new statement: fresh snapshot, after the lock
    IF m.id IS NULL OR (p, r, i) < (m.priority, m.run_at, m.id) THEN
        INSERT INTO q.queue_marks (queue, is_advance, priority, run_at, id) VALUES (q, false, p, r, i);
    END IF;
END $$;

-- The advancer (one per queue, run by the leader every few ms). Returns true if it moved the mark.
CREATE FUNCTION mark_advance(q text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
DECLARE m record; n record;
BEGIN
    IF NOT pg_try_advisory_xact_lock(q.mark_lock_key(q)) THEN
        RETURN false;  -- a lowerer is in flight: try again next time
    END IF;
    SELECT * INTO m FROM q.mark_get(q);
    SELECT j.priority, j.run_at, j.id INTO n FROM q.jobs j
    WHERE j.state = 'available' AND j.queue = q
      AND (j.priority, j.run_at, j.id) >= (m.priority, m.run_at, m.id)
    ORDER BY j.priority, j.run_at, j.id LIMIT 1;
    IF n.id IS NULL OR (n.priority, n.run_at, n.id) <= (m.priority, m.run_at, m.id) THEN
        RETURN false;
    END IF;
    INSERT INTO q.queue_marks (queue, is_advance, priority, run_at, id) VALUES (q, true, n.priority, n.run_at, n.id);
    RETURN true;
END $$;
