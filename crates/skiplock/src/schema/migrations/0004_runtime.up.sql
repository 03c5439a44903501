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
