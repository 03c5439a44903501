-- skiplock schema, version 4: the workers registry, and unique keys whose
-- job is gone freed by the enqueuer that finds them taken.
--
-- `{schema}` is the validated, quoted schema name. See docs/OPERATIONS.md.

-- ---------------------------------------------------------------------------
-- The workers registry: one row per live worker process, keyed by its worker
-- id (the name it leaves in jobs.leased_by and leader.leader_id). A process
-- takes the row at start only if no live process holds it (expires_at in the
-- past, or it is the process's own `instance`), and keeps it alive with every
-- heartbeat, which moves expires_at exactly as it moves its jobs' leases. So
-- a worker id names at most one live process: a second process started with
-- the same id waits until the first is gone (its row deleted at shutdown, or
-- expired with its leases), and can never share the first's leadership or
-- give back its jobs. Operators and the dashboard read it to see who runs.
CREATE TABLE {schema}.workers (
    id          text PRIMARY KEY,
    instance    bigint NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    queues      jsonb NOT NULL DEFAULT '{}',
    -- The lease its claims give: the rescuer tells a job it never started
    -- (never heartbeated: its lease still ends exactly this long after its
    -- attempt began) from one it did (db/job/rescue.sql).
    lease_ms    bigint NOT NULL,
    running     integer NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT workers_id_length CHECK (char_length(id) BETWEEN 1 AND 255)
) WITH (fillfactor = 50);

-- ---------------------------------------------------------------------------
-- unique_key_holders (migration 0003) first frees the keys asked about whose
-- job is in neither the hot table nor the archive (dropped by retention, or
-- deleted on completion by a worker that keeps no completed jobs): the
-- enqueuer that found such a key taken takes it at its next insert round,
-- instead of failing until the pruner comes by. Each statement of a volatile
-- function sees what committed before it, so a unique_keys row the DELETE
-- sees was committed together with its job: a job it cannot see is gone,
-- not merely not yet visible. Then it reports the holders as before.
CREATE OR REPLACE FUNCTION {schema}.unique_key_holders(p_keys text[], p_finished boolean)
RETURNS TABLE (key text, job_id bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    DELETE FROM {schema}.unique_keys u
    WHERE u.key = ANY (p_keys)
      AND NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.id = u.job_id)
      AND NOT EXISTS (SELECT 1 FROM {schema}.jobs_archive a WHERE a.id = u.job_id);
    RETURN QUERY
    SELECT j.unique_key, j.id FROM {schema}.jobs j WHERE j.unique_key = ANY (p_keys)
    UNION ALL
    SELECT u.key, u.job_id
    FROM {schema}.unique_keys u
    WHERE p_finished
      AND u.key = ANY (p_keys)
      AND NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.unique_key = u.key)
      AND EXISTS (SELECT 1 FROM {schema}.jobs_archive a WHERE a.id = u.job_id);
END
$$;

-- ---------------------------------------------------------------------------
-- Leadership that a slow or stuck pass cannot take down. Every maintenance
-- pass locks the leader row first, so that a takeover waits for the pass in
-- flight and two processes' passes never overlap. It used to lock it FOR
-- SHARE, which the leader's own renewal (an UPDATE) waits for too: a pass
-- stuck for half a lease (a lock wait, a vanished host) cost the leader its
-- lease, and nobody could take over while the pass held the row. Now a pass
-- locks it FOR KEY SHARE, which a renewal (an UPDATE that changes no key)
-- does not wait for, and a takeover replaces the row (DELETE, then INSERT),
-- which does wait. Each pass's transaction is bounded besides (statement,
-- lock and idle-in-transaction timeouts, set by db/leader/guard.sql), so a
-- takeover waits at most that long.
CREATE OR REPLACE FUNCTION {schema}.leader_guard(p_id text) RETURNS SETOF timestamptz
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
SELECT clock_timestamp()
FROM {schema}.leader
WHERE name = 'default' AND leader_id = p_id AND expires_at > clock_timestamp()
FOR KEY SHARE
$$;

-- Becomes or stays the leader, as 0003's: the holder renews (an UPDATE, not
-- held up by its own passes); anyone else takes an expired row by deleting
-- it, which waits for the old leader's pass in flight, and inserting its own.
CREATE OR REPLACE FUNCTION {schema}.leader_elect(p_id text, p_lease_ms bigint)
RETURNS TABLE (elected_at timestamptz, expires_at timestamptz, db_now timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_lease_ms IS NULL OR p_lease_ms NOT BETWEEN 1 AND {LEADER_LEASE_MAX_MS} THEN
        RAISE EXCEPTION 'invalid lease: % ms is out of range 1 to {LEADER_LEASE_MAX_MS}', coalesce(p_lease_ms::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    UPDATE {schema}.leader l
    SET expires_at = now() + p_lease_ms * interval '1 millisecond'
    WHERE l.name = 'default' AND l.leader_id = p_id
    RETURNING l.elected_at, l.expires_at, now();
    IF FOUND THEN
        RETURN;
    END IF;
    DELETE FROM {schema}.leader l WHERE l.name = 'default' AND l.expires_at < now();
    RETURN QUERY
    INSERT INTO {schema}.leader AS l (name, leader_id, elected_at, expires_at)
    VALUES ('default', p_id, now(), now() + p_lease_ms * interval '1 millisecond')
    ON CONFLICT (name) DO NOTHING
    RETURNING l.elected_at, l.expires_at, now();
END
$$;

-- ---------------------------------------------------------------------------
-- The archive's DDL holds no lock the workers need for longer than one
-- statement (review #8). It used to lock the whole archive (SHARE ROW
-- EXCLUSIVE, which every finish and claim waits for) and keep the lock for
-- the whole archive pass: the move out of the default partition, the
-- ATTACH's scan of it, retention's deletes and the unique-key prune, which
-- with a big default partition stalled every claim for seconds to minutes.
-- Now:
--   - creating a day's partition locks only the default partition (against
--     rows landing there for that day between the move and the ATTACH;
--     only jobs that finished outside every dated day are routed there);
--     ATTACH itself takes SHARE UPDATE EXCLUSIVE on the archive, which no
--     insert waits for;
--   - the move out of the default partition uses an index on finished_at;
--   - archive_partitions_ensure creates one partition per call, and
--     archive_partitions_expire drops one table per call: the library calls
--     each in a transaction of its own until there is nothing left to do,
--     and retention's deletes and the unique-key prune in others, so each
--     transaction holds its locks for one statement.
-- ---------------------------------------------------------------------------
CREATE INDEX jobs_archive_default_finished_idx ON {schema}.jobs_archive_default (finished_at);

CREATE OR REPLACE FUNCTION {schema}.archive_partition_create(day date) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO'
AS $$
DECLARE
    lo   timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi   timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    part text := 'jobs_archive_p' || to_char(day, 'YYYYMMDD');
    st   text;
BEGIN
    IF to_regclass(format('%I.%I', '{schema_name}', part)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- Hold off rows for the default partition (only those that finished
    -- outside every dated day go there) until this commits: one landing
    -- there for this day between the move below and the ATTACH would fail
    -- the ATTACH. Finishes routed to the dated days do not wait.
    LOCK TABLE {schema}.jobs_archive_default IN SHARE ROW EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE %I.%I (LIKE {schema}.jobs_archive INCLUDING DEFAULTS INCLUDING CONSTRAINTS)'
                   ' PARTITION BY LIST (state)', '{schema_name}', part);
    FOREACH st IN ARRAY ARRAY['completed', 'cancelled', 'discarded'] LOOP
        EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I FOR VALUES IN (%L)',
                       '{schema_name}', part || '_' || st, '{schema_name}', part, st);
    END LOOP;
    EXECUTE format('WITH moved AS (DELETE FROM {schema}.jobs_archive_default'
                   ' WHERE finished_at >= $1 AND finished_at < $2 RETURNING *)'
                   ' INSERT INTO %I.%I SELECT * FROM moved', '{schema_name}', part)
        USING lo, hi;
    EXECUTE format('ALTER TABLE {schema}.jobs_archive ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                   '{schema_name}', part, lo, hi);
    RETURN part;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.archive_partitions_ensure(at timestamptz, days_ahead integer) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO'
AS $$
DECLARE
    first date;
    made  text;
BEGIN
    PERFORM {schema}.archive_check_at(at, true);
    IF days_ahead IS NULL OR days_ahead NOT BETWEEN 0 AND {ARCHIVE_DAYS_AHEAD_MAX} THEN
        RAISE EXCEPTION 'invalid days_ahead: % is out of range 0 to {ARCHIVE_DAYS_AHEAD_MAX}',
            coalesce(days_ahead::text, 'null') USING ERRCODE = '22023';
    END IF;
    first := (at AT TIME ZONE 'UTC')::date;
    FOR i IN 0 .. days_ahead LOOP
        made := {schema}.archive_partition_create(first + i);
        IF made IS NOT NULL THEN
            RETURN NEXT made;
            RETURN;  -- one per call: each in a transaction of its own
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.archive_partitions_expire(
    at timestamptz, keep_completed interval, keep_cancelled interval, keep_discarded interval
) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO'
AS $$
DECLARE
    part   record;
    leaf   record;
    day_hi timestamptz;
    doomed text[];
    leaves text[];
BEGIN
    PERFORM {schema}.archive_check_at(at, false);
    PERFORM {schema}.archive_check_keep('keep_completed', keep_completed);
    PERFORM {schema}.archive_check_keep('keep_cancelled', keep_cancelled);
    PERFORM {schema}.archive_check_keep('keep_discarded', keep_discarded);
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{schema}.jobs_archive'::regclass
          AND c.relname ~ '^jobs_archive_p[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        day_hi := (to_date(substr(part.relname, 15), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC';
        doomed := ARRAY(
            SELECT s FROM unnest(ARRAY['completed', 'cancelled', 'discarded'],
                                 ARRAY[keep_completed, keep_cancelled, keep_discarded]) AS k(s, keep)
            WHERE keep IS NOT NULL AND day_hi <= at - keep);
        IF cardinality(doomed) = 0 THEN
            CONTINUE;
        END IF;
        leaves := ARRAY(
            SELECT c.relname
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = format('%I.%I', '{schema_name}', part.relname)::regclass);
        IF cardinality(doomed) = 3 OR NOT EXISTS (
            SELECT 1 FROM unnest(leaves) AS l(name)
            WHERE l.name NOT IN (SELECT part.relname || '_' || d FROM unnest(doomed) AS d)
        ) THEN
            EXECUTE format('DROP TABLE %I.%I', '{schema_name}', part.relname);
            RETURN NEXT part.relname;
            RETURN;  -- one per call: each in a transaction of its own
        END IF;
        FOR leaf IN SELECT part.relname || '_' || d AS name FROM unnest(doomed) AS d LOOP
            IF leaf.name = ANY (leaves) THEN
                EXECUTE format('DROP TABLE %I.%I', '{schema_name}', leaf.name);
                RETURN NEXT leaf.name;
                RETURN;
            END IF;
        END LOOP;
    END LOOP;
END
$$;
