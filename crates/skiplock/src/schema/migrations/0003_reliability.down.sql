-- Reverts 0003_reliability, section by section in reverse order, restoring
-- 0002's definitions exactly (bodies copied from 0002_operations.up.sql).

-- ===========================================================================
-- 4. Least privilege: 0002's enqueue and enqueue_many, and none of the
-- narrow SECURITY DEFINER functions. (The role grants of OPERATIONS.md
-- before this version need UPDATE and DELETE on the tables again.)
-- ===========================================================================
CREATE OR REPLACE FUNCTION {schema}.enqueue(
    kind text,
    args jsonb,
    queue text DEFAULT 'default',
    priority integer DEFAULT 0,
    run_at timestamptz DEFAULT now(),
    max_attempts integer DEFAULT 20,
    unique_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id    bigint;
    new_state {schema}.job_state;
BEGIN
    PERFORM {schema}.check_job('', kind, args, queue, priority, run_at, max_attempts, unique_key);
    -- A holder that finishes between the insert and the look-up frees its
    -- key: insert again (at most three times).
    FOR attempt IN 1 .. 3 LOOP
        INSERT INTO {schema}.jobs AS j (queue, kind, args, priority, run_at, state, max_attempts, unique_key)
        VALUES (queue, kind, args, priority, run_at,
                CASE WHEN run_at > now() THEN 'scheduled' ELSE 'available' END::{schema}.job_state,
                max_attempts, unique_key)
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING j.id, j.state INTO new_id, new_state;
        IF new_id IS NOT NULL THEN
            IF new_state = 'available' THEN
                PERFORM pg_notify('{schema_name}_insert', queue);
            END IF;
            RETURN new_id;
        END IF;
        SELECT j.id INTO new_id FROM {schema}.jobs j WHERE j.unique_key = enqueue.unique_key;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'duplicate unique key "%": its holder keeps changing', unique_key USING ERRCODE = '23505';
END
$$;

CREATE OR REPLACE FUNCTION {schema}.enqueue_many(jobs jsonb) RETURNS SETOF bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    job      jsonb;
    i        integer := 0;
    p        text;
    f        text;
    v_run    jsonb;
    kinds    text[] := '{}';
    argss    jsonb[] := '{}';
    queues   text[] := '{}';
    prios    integer[] := '{}';
    runs     timestamptz[] := '{}';
    maxes    integer[] := '{}';
    keys     text[] := '{}';
    ids      bigint[];
    done     bigint[];
    holder   bigint;
BEGIN
    IF jobs IS NULL OR jsonb_typeof(jobs) <> 'array' THEN
        RAISE EXCEPTION 'invalid jobs: must be a JSON array of job objects' USING ERRCODE = '22023';
    END IF;
    FOR job IN SELECT e FROM jsonb_array_elements(jobs) WITH ORDINALITY AS t(e, n) ORDER BY n LOOP
        p := format('jobs[%s].', i);
        IF jsonb_typeof(job) <> 'object' THEN
            RAISE EXCEPTION 'invalid jobs[%]: must be a JSON object, not %', i, job USING ERRCODE = '22023';
        END IF;
        FOR f IN SELECT jsonb_object_keys(job) LOOP
            IF f <> ALL (ARRAY['kind', 'args', 'queue', 'priority', 'run_at', 'max_attempts', 'unique_key']) THEN
                RAISE EXCEPTION 'invalid jobs[%]: unknown field "%" (known: kind, args, queue, priority, run_at, max_attempts, unique_key)',
                    i, f USING ERRCODE = '22023';
            END IF;
        END LOOP;
        kinds  := kinds  || ({schema}.job_field(job, 'kind', 'string', p) #>> '{}');
        argss  := argss  || coalesce({schema}.job_field(job, 'args', 'any', p), '{}'::jsonb);
        queues := queues || coalesce({schema}.job_field(job, 'queue', 'string', p) #>> '{}', 'default');
        prios  := prios  || coalesce(({schema}.job_field(job, 'priority', 'integer', p) #>> '{}')::integer, 0);
        maxes  := maxes  || coalesce(({schema}.job_field(job, 'max_attempts', 'integer', p) #>> '{}')::integer, 20);
        keys   := keys   || ({schema}.job_field(job, 'unique_key', 'string', p) #>> '{}');
        v_run  := {schema}.job_field(job, 'run_at', 'string', p);
        BEGIN
            runs := runs || coalesce((v_run #>> '{}')::timestamptz, now());
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
            RAISE EXCEPTION 'invalid %run_at: % is not a timestamp (use ISO 8601, e.g. 2030-01-01T00:00:00Z)', p, v_run
                USING ERRCODE = '22023';
        END;
        PERFORM {schema}.check_job(p, kinds[i + 1], argss[i + 1], queues[i + 1], prios[i + 1], runs[i + 1],
                                   maxes[i + 1], keys[i + 1]);
        i := i + 1;
    END LOOP;

    -- One statement for the lot, in unique-key order so concurrent batches
    -- take the key index's entries in one order (no deadlock).
    WITH input AS (
        SELECT nextval('{schema}.jobs_id_seq') AS id, t.*
        FROM unnest(kinds, argss, queues, prios, runs, maxes, keys) WITH ORDINALITY
            AS t(kind, args, queue, priority, run_at, max_attempts, unique_key, ord)
    ),
    inserted AS (
        INSERT INTO {schema}.jobs (id, queue, kind, args, priority, run_at, state, max_attempts, unique_key)
        SELECT id, queue, kind, args, priority, run_at,
               CASE WHEN run_at > now() THEN 'scheduled' ELSE 'available' END::{schema}.job_state,
               max_attempts, unique_key
        FROM input
        ORDER BY unique_key, ord
        ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING id, queue, state
    ),
    notified AS (
        SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
        FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') q
    )
    SELECT (SELECT array_agg(id ORDER BY ord) FROM input),
           (SELECT coalesce(array_agg(id), '{}') FROM inserted, notified)
    INTO ids, done;

    FOR k IN 1 .. coalesce(cardinality(ids), 0) LOOP
        IF ids[k] = ANY (done) THEN
            RETURN NEXT ids[k];
        ELSE
            -- Its unique key was taken (by an earlier job, or one of this
            -- batch): the holder's id, or enqueue it again if the holder
            -- finished meanwhile.
            SELECT j.id INTO holder FROM {schema}.jobs j WHERE j.unique_key = keys[k];
            IF holder IS NULL THEN
                holder := {schema}.enqueue(kinds[k], argss[k], queues[k], prios[k], runs[k], maxes[k], keys[k]);
            END IF;
            RETURN NEXT holder;
        END IF;
    END LOOP;
END
$$;

DROP FUNCTION IF EXISTS {schema}.leader_resign(text);
DROP FUNCTION IF EXISTS {schema}.leader_guard(text);
DROP FUNCTION IF EXISTS {schema}.leader_elect(text, bigint);
DROP FUNCTION IF EXISTS {schema}.archive_prune_default(timestamptz, interval, interval, interval, bigint);
DROP FUNCTION IF EXISTS {schema}.unique_keys_prune(text, bigint);
DROP FUNCTION IF EXISTS {schema}.unique_key_holders(text[], boolean);
DROP FUNCTION IF EXISTS {schema}.unique_keys_claim(text[], bigint[], text[], timestamptz[]);

-- ===========================================================================
-- 3. skiplock.cancel: 0002's single statement.
-- ===========================================================================
CREATE OR REPLACE FUNCTION {schema}.cancel(ids bigint[]) RETURNS TABLE (id bigint, result text)
LANGUAGE sql AS $$
WITH input AS (
    SELECT DISTINCT unnest(ids) AS id
),
finished AS (
    DELETE FROM {schema}.jobs j
    USING input i
    WHERE j.id = i.id AND j.state <> 'running'
    RETURNING j.*
),
archived AS (
    INSERT INTO {schema}.jobs_archive
        (id, run_at, created_at, attempted_at, finished_at, lease_token, state, attempt,
         max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, run_at, created_at, attempted_at, now(), lease_token, 'cancelled',
           attempt, max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta
    FROM finished
),
flagged AS (
    UPDATE {schema}.jobs j
    SET cancel_requested_at = coalesce(j.cancel_requested_at, now())
    FROM input i
    WHERE j.id = i.id AND j.state = 'running'
    RETURNING j.id
),
notified AS (
    SELECT count(pg_notify('{schema_name}_control', json_build_object('cancel', f.id)::text)) AS n
    FROM flagged f
)
SELECT id, 'cancelled' FROM finished
UNION ALL
SELECT id, 'cancelling' FROM flagged, notified
$$;

-- ===========================================================================
-- 2. The SQL API's input checks: 0002's check_job and job_field.
-- ===========================================================================
CREATE OR REPLACE FUNCTION {schema}.check_job(
    prefix text, kind text, args jsonb, queue text, priority integer, run_at timestamptz,
    max_attempts integer, unique_key text
) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM {schema}.check_name(prefix || 'kind', kind, 255, '_.:/-', '_ . : / -');
    PERFORM {schema}.check_name(prefix || 'queue', queue, 128, '_.:-', '_ . : -');
    IF args IS NULL THEN
        RAISE EXCEPTION 'invalid %args: must not be null (use ''{}'')', prefix USING ERRCODE = '22023';
    END IF;
    IF octet_length(args::text) > 1048576 THEN
        RAISE EXCEPTION 'invalid %args: is % bytes of JSON, the limit is 1048576', prefix, octet_length(args::text)
            USING ERRCODE = '22023';
    END IF;
    IF priority IS NULL OR priority NOT BETWEEN 0 AND 9 THEN
        RAISE EXCEPTION 'invalid %priority: % is out of range 0 (first) to 9 (last)', prefix, coalesce(priority::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    IF max_attempts IS NULL OR max_attempts NOT BETWEEN 1 AND 10000 THEN
        RAISE EXCEPTION 'invalid %max_attempts: % is out of range 1 to 10000', prefix, coalesce(max_attempts::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    IF run_at IS NULL THEN
        RAISE EXCEPTION 'invalid %run_at: must not be null', prefix USING ERRCODE = '22023';
    END IF;
    IF run_at < '1970-01-01 00:00:00+00' THEN
        RAISE EXCEPTION 'invalid %run_at: % is before 1970-01-01', prefix, run_at USING ERRCODE = '22023';
    END IF;
    IF run_at > now() + interval '3660 days' THEN
        RAISE EXCEPTION 'invalid %run_at: % is more than ten years ahead', prefix, run_at USING ERRCODE = '22023';
    END IF;
    IF unique_key IS NOT NULL AND unique_key = '' THEN
        RAISE EXCEPTION 'invalid %unique_key: must not be empty', prefix USING ERRCODE = '22023';
    END IF;
    IF octet_length(unique_key) > 512 THEN
        RAISE EXCEPTION 'invalid %unique_key: is % bytes long, the limit is 512', prefix, octet_length(unique_key)
            USING ERRCODE = '22023';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.job_field(job jsonb, field text, want text, prefix text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := job -> field;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF want = 'integer' THEN
        IF jsonb_typeof(v) <> 'number' OR (v #>> '{}')::numeric <> trunc((v #>> '{}')::numeric)
           OR abs((v #>> '{}')::numeric) > 2147483647 THEN
            RAISE EXCEPTION 'invalid %: must be an integer, not %', prefix || field, v USING ERRCODE = '22023';
        END IF;
    ELSIF want <> 'any' AND jsonb_typeof(v) <> want THEN
        RAISE EXCEPTION 'invalid %: must be a %, not %', prefix || field, want, v USING ERRCODE = '22023';
    END IF;
    RETURN v;
END
$$;

-- ===========================================================================
-- 1. The archive's SECURITY DEFINER functions: 0002's bodies, unbounded, in
-- the session's TimeZone and DateStyle.
-- ===========================================================================
ALTER FUNCTION {schema}.archive_partition_create(date) RESET TimeZone RESET DateStyle;

CREATE OR REPLACE FUNCTION {schema}.archive_partitions_ensure(at timestamptz, days_ahead integer) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    first date := (at AT TIME ZONE 'UTC')::date;
    made  text;
BEGIN
    FOR i IN 0 .. greatest(days_ahead, 0) LOOP
        made := {schema}.archive_partition_create(first + i);
        IF made IS NOT NULL THEN
            RETURN NEXT made;
        END IF;
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.archive_partitions_expire(
    at timestamptz, keep_completed interval, keep_cancelled interval, keep_discarded interval
) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    part   record;
    leaf   record;
    day_hi timestamptz;
    doomed text[];
    leaves text[];
BEGIN
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
            CONTINUE;
        END IF;
        FOR leaf IN SELECT part.relname || '_' || d AS name FROM unnest(doomed) AS d LOOP
            IF leaf.name = ANY (leaves) THEN
                EXECUTE format('DROP TABLE %I.%I', '{schema_name}', leaf.name);
                RETURN NEXT leaf.name;
            END IF;
        END LOOP;
    END LOOP;
END
$$;

ALTER FUNCTION {schema}.archive_partitions_ensure(timestamptz, integer)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION {schema}.archive_partitions_expire(timestamptz, interval, interval, interval)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
DROP FUNCTION IF EXISTS {schema}.archive_check_keep(text, interval);
DROP FUNCTION IF EXISTS {schema}.archive_check_at(timestamptz, boolean);
