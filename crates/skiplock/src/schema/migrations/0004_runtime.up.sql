-- skiplock schema, version 4: the workers registry, and unique keys whose
-- job is gone freed by the enqueuer.
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
    running     integer NOT NULL DEFAULT 0,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT workers_id_length CHECK (char_length(id) BETWEEN 1 AND 255)
) WITH (fillfactor = 50);

-- ---------------------------------------------------------------------------
-- Frees the unique keys of `keys` whose job is in neither the hot table nor
-- the archive (dropped by retention, or deleted on completion by a worker
-- that keeps no completed jobs): the enqueuer that found such a key taken
-- takes it at its next insert round, instead of failing until the pruner
-- comes by. Run as a statement of its own after the insert: a unique_keys
-- row it sees was committed together with its job, so a job it cannot see is
-- gone, not merely not yet visible. SECURITY DEFINER, so the enqueue role
-- needs no DELETE on the table; it can only delete rows that hold nothing.
-- Returns the keys freed.
CREATE FUNCTION {schema}.unique_keys_free_stale(keys text[]) RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    DELETE FROM {schema}.unique_keys u
    WHERE u.key = ANY (keys)
      AND NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.id = u.job_id)
      AND NOT EXISTS (SELECT 1 FROM {schema}.jobs_archive a WHERE a.id = u.job_id)
    RETURNING u.key
$$;
REVOKE EXECUTE ON FUNCTION {schema}.unique_keys_free_stale(text[]) FROM PUBLIC;
