-- skiplock schema, version 6: low-water marks, so a claim starts where the
-- consumed part of its queue ends, even while a long transaction elsewhere
-- keeps vacuum from removing the dead index entries of consumed jobs.
--
-- `{schema}` is the validated, quoted schema name. See docs/DESIGN.md ("Under
-- a pinned horizon") and docs/studies/pinned-horizon/ for the measurements.
--
-- Invariant: every available job of queue q and priority p has
-- (run_at, id) >= mark(q, p). The claim adds the bound to its index range
-- (jobs_claim_idx), so it never walks the entries below the mark, and it sees
-- every candidate it saw before, because there is none below the mark.
--
-- - Storage: an insert-only log, never an updated row (under a pinned horizon
--   each update would leave one more version for the next reader to step
--   over, the disease again). An 'advance' row carries all ten marks of a
--   queue (arrays indexed by priority + 1); a 'lower' row one priority's key.
--   mark(q, p) = least(the newest advance's key for p, the keys of p's lower
--   rows newer than that advance). Readers read the newest rows by index and
--   never visit the old ones; the leader prunes them.
-- - Lowering: the triggers below, on every path that makes a job available
--   (enqueue by any statement, COPY, requeue, promote, rescue, retry, the SQL
--   API, an operator's own UPDATE). Under the queue's advisory lock in shared
--   mode, held to commit, a fresh snapshot reads the mark, and a lower row is
--   written only for a key below it (in the common case, new jobs land after
--   the mark: nothing is written).
-- - Advancing: mark_advance(q), run by workers every few tens of
--   milliseconds while they claim. It takes the same lock exclusively with a
--   try-lock (skips its turn while any lowerer is between its lock and its
--   commit, so no enqueue waits behind it; a worker whose turns keep being
--   skipped waits for the lock a few milliseconds once in a while), then with a fresh
--   snapshot finds each priority's first available key at or above its mark
--   (a plain read: jobs locked by claims in flight still count), and appends
--   an advance row. Claims never write the mark.
-- Why it is safe: while the advancer holds the lock, no lowerer is between
-- its lock and its commit, so every job made available before is visible to
-- it; a lowerer that locks after the advance sees the advance and lowers. An
-- aborted claim or advance changes nothing; an aborted lowerer's job does not
-- exist. Lowering is always safe, so any doubt lowers.

-- CACHE 1 (the default): the log's order is the order of the writes, which
-- the lock orders between lowerers and advancers.
CREATE SEQUENCE {schema}.queue_marks_seq AS bigint;

CREATE TABLE {schema}.queue_marks (
    queue      text NOT NULL,
    seq        bigint NOT NULL DEFAULT nextval('{schema}.queue_marks_seq'),
    is_advance boolean NOT NULL,
    run_ats    timestamptz[],
    ids        bigint[],
    priority   smallint,
    run_at     timestamptz,
    id         bigint,
    CONSTRAINT queue_marks_shape CHECK (
        CASE WHEN is_advance
             THEN cardinality(run_ats) = 10 AND cardinality(ids) = 10 AND priority IS NULL
             ELSE priority BETWEEN 0 AND 9 AND run_at IS NOT NULL AND id IS NOT NULL END)
);

-- The newest advance of a queue, read backwards, LIMIT 1.
CREATE INDEX queue_marks_advance_idx ON {schema}.queue_marks (queue, seq) WHERE is_advance;
-- Lower rows are rare: on their own index, "newer than the advance" is a
-- short probe whatever the planner guesses for seq > $x.
CREATE INDEX queue_marks_lower_idx ON {schema}.queue_marks (queue, seq) WHERE NOT is_advance;

-- The advisory lock of queue q's marks (shared: lowerers; exclusive: the advancer).
CREATE FUNCTION {schema}.mark_lock_key(q text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS
$$ SELECT hashtextextended('skiplock.mark.{schema_name}.' || q, 0) $$;

-- The ten marks of queue q, priority order. Without an advance row (a queue
-- never advanced) every mark is (-infinity, 0): the claim walks from the start.
CREATE FUNCTION {schema}.queue_marks_of(q text)
RETURNS TABLE (priority smallint, run_at timestamptz, id bigint)
LANGUAGE sql STABLE AS $$
    WITH adv AS (
        SELECT a.seq, a.run_ats, a.ids
        FROM {schema}.queue_marks a
        WHERE a.queue = q AND a.is_advance
        ORDER BY a.seq DESC
        LIMIT 1
    ),
    low AS (
        SELECT DISTINCT ON (l.priority) l.priority, l.run_at, l.id
        FROM {schema}.queue_marks l
        WHERE l.queue = q AND NOT l.is_advance
          AND l.seq > coalesce((SELECT seq FROM adv), 0)
        ORDER BY l.priority, l.run_at, l.id
    ),
    base AS (
        SELECT p::smallint AS priority,
               coalesce((SELECT run_ats[p + 1] FROM adv), '-infinity') AS run_at,
               coalesce((SELECT ids[p + 1] FROM adv), 0) AS id
        FROM generate_series(0, 9) p
    )
    SELECT b.priority,
           CASE WHEN low.id IS NOT NULL AND (low.run_at, low.id) < (b.run_at, b.id) THEN low.run_at ELSE b.run_at END,
           CASE WHEN low.id IS NOT NULL AND (low.run_at, low.id) < (b.run_at, b.id) THEN low.id ELSE b.id END
    FROM base b
    LEFT JOIN low ON low.priority = b.priority
    ORDER BY b.priority
$$;

-- Makes sure mark(q, p) <= (r, i): called, in the transaction that made the
-- job available, before it commits. VOLATILE: in READ COMMITTED each
-- statement below takes a fresh snapshot, after the lock. The mark is at or
-- below the newest advance's key, so a key at or above that key needs
-- nothing (one index probe); below it, a lower row is written without
-- looking for an older one (a second lower row is harmless).
CREATE FUNCTION {schema}.mark_lower(q text, p smallint, r timestamptz, i bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared({schema}.mark_lock_key(q));
    -- An older snapshot (REPEATABLE READ, SERIALIZABLE) may not see the
    -- newest advance: always lower.
    IF current_setting('transaction_isolation') = 'read committed' AND NOT EXISTS (
        SELECT 1
        FROM (SELECT a.run_ats[p + 1] AS run_at, a.ids[p + 1] AS id
              FROM {schema}.queue_marks a
              WHERE a.queue = q AND a.is_advance
              ORDER BY a.seq DESC
              LIMIT 1) m
        WHERE (r, i) < (m.run_at, m.id)
    ) THEN
        RETURN;
    END IF;
    INSERT INTO {schema}.queue_marks (queue, is_advance, priority, run_at, id)
    VALUES (q, false, p, r, i);
END $$;

-- Moves queue q's marks up to each priority's first available job, or, for a
-- priority with none, to (now(), 0): past every entry consumed so far (a job
-- that is made available later with an older key lowers it). Returns
-- 'moved', 'same' (nothing to move past), or 'busy': a lowerer held the lock
-- (nothing done; the next turn will). With wait_ms 0 it never waits; a
-- worker whose turns keep finding the lock held (enqueues back to back, or
-- a long transaction that enqueued) waits up to wait_ms once in a while:
-- meanwhile new enqueues of the queue wait behind it. `from_start` reads
-- from the start of each priority instead of the mark (a worker's first
-- pass: a repair of a mark that a write bypassing the triggers left too high).
CREATE FUNCTION {schema}.mark_advance(q text, from_start boolean DEFAULT false, wait_ms integer DEFAULT 0)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    m record;
    nr timestamptz;
    ni bigint;
    ras timestamptz[] := '{}';
    nids bigint[] := '{}';
    moved boolean := false;
    timeout text := current_setting('lock_timeout');
BEGIN
    IF wait_ms > 0 THEN
        BEGIN
            PERFORM set_config('lock_timeout', wait_ms || 'ms', true);
            PERFORM pg_advisory_xact_lock({schema}.mark_lock_key(q));
            PERFORM set_config('lock_timeout', timeout, true);
        EXCEPTION WHEN lock_not_available THEN
            RETURN 'busy';
        END;
    ELSIF NOT pg_try_advisory_xact_lock({schema}.mark_lock_key(q)) THEN
        RETURN 'busy';
    END IF;
    FOR m IN SELECT * FROM {schema}.queue_marks_of(q) LOOP
        IF from_start THEN
            m.run_at := '-infinity';
            m.id := 0;
        END IF;
        SELECT j.run_at, j.id INTO nr, ni
        FROM {schema}.jobs j
        WHERE j.state = 'available' AND j.queue = q AND j.priority = m.priority
          AND (j.run_at, j.id) >= (m.run_at, m.id)
        ORDER BY j.run_at, j.id
        LIMIT 1;
        IF NOT FOUND THEN
            IF now() > m.run_at THEN
                nr := now();
                ni := 0;
            ELSE
                nr := m.run_at;
                ni := m.id;
            END IF;
        END IF;
        ras := ras || nr;
        nids := nids || ni;
        moved := moved OR (nr, ni) IS DISTINCT FROM (m.run_at, m.id);
    END LOOP;
    IF moved OR from_start THEN
        INSERT INTO {schema}.queue_marks (queue, is_advance, run_ats, ids) VALUES (q, true, ras, nids);
    END IF;
    RETURN CASE WHEN moved THEN 'moved' ELSE 'same' END;
END $$;

-- The lowering triggers. Inserts: once per statement, per (queue, priority)
-- among the available rows it inserted, with (least run_at, least id): at or
-- below the smallest key (lowering further is always safe), and an
-- aggregate where the exact key would need a sort of the whole statement.
CREATE FUNCTION {schema}.jobs_mark_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN
        SELECT n.queue, n.priority, min(n.run_at) AS run_at, min(n.id) AS id
        FROM inserted n
        WHERE n.state = 'available'
        GROUP BY n.queue, n.priority
    LOOP
        PERFORM {schema}.mark_lower(r.queue, r.priority, r.run_at, r.id);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_mark_inserted AFTER INSERT ON {schema}.jobs
REFERENCING NEW TABLE AS inserted
FOR EACH STATEMENT EXECUTE FUNCTION {schema}.jobs_mark_inserted();

-- Updates: per row, and only for a row that becomes available or whose key
-- moves while available (the WHEN clause is checked without a call, so a
-- claim, a heartbeat or a finish never runs the function).
CREATE FUNCTION {schema}.jobs_mark_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.mark_lower(NEW.queue, NEW.priority, NEW.run_at, NEW.id);
    RETURN NULL;
END $$;

CREATE TRIGGER jobs_mark_updated AFTER UPDATE ON {schema}.jobs
FOR EACH ROW
WHEN (NEW.state = 'available' AND (OLD.state <> 'available'
      OR (NEW.queue, NEW.priority, NEW.run_at, NEW.id) IS DISTINCT FROM (OLD.queue, OLD.priority, OLD.run_at, OLD.id)))
EXECUTE FUNCTION {schema}.jobs_mark_updated();

-- The leader's pruning: every row older than its queue's newest advance is
-- no longer read by anyone with a current snapshot.
CREATE FUNCTION {schema}.queue_marks_prune() RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    WITH newest AS (
        SELECT queue, max(seq) AS seq FROM {schema}.queue_marks WHERE is_advance GROUP BY queue
    ),
    gone AS (
        DELETE FROM {schema}.queue_marks m
        USING newest n
        WHERE m.queue = n.queue AND m.seq < n.seq
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

-- Rights. The log is written only through the functions above, with the
-- owner's rights (SECURITY DEFINER, a fixed search_path): a role that may
-- enqueue can lower a mark (always safe: the triggers call mark_lower in
-- its name, so it stays executable by everyone), never raise one. Advancing
-- and pruning are the workers' (OPERATIONS.md, "Roles and privileges"); the
-- claim reads the log.
REVOKE EXECUTE ON FUNCTION {schema}.mark_advance(text, boolean, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.queue_marks_prune() FROM PUBLIC;
