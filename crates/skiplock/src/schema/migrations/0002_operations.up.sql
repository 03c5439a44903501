-- skiplock schema, version 2: leader election, periodic jobs, unique keys
-- that outlive their job, the archive's dated partitions, and the SQL API.
--
-- `{schema}` is the validated, quoted schema name; `{schema_name}` the bare
-- one (for NOTIFY channels and format()'s %I). See docs/OPERATIONS.md and
-- docs/SQL_API.md.

-- Leader election: one row per election ('default'), held by the process
-- named in leader_id until expires_at (database clock). The leader renews it
-- with an upsert that only succeeds for the holder or once the lease expired;
-- every maintenance pass locks it FOR SHARE, so a takeover waits for the
-- old leader's pass in flight to commit. Works through PgBouncer in
-- transaction mode: no session state, no advisory locks.
CREATE TABLE {schema}.leader (
    name        text PRIMARY KEY,
    leader_id   text NOT NULL,
    elected_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    CONSTRAINT leader_id_length CHECK (char_length(leader_id) BETWEEN 1 AND 255)
) WITH (fillfactor = 50);

-- Periodic jobs: the next run not yet enqueued. The leader enqueues a run
-- and moves next_run_at past it in one transaction, with a compare-and-set
-- on next_run_at, so a run is enqueued once even if two processes believe
-- they lead. `schedule` is the schedule's text: when it changes, the next
-- run is computed afresh.
CREATE TABLE {schema}.periodic (
    name         text PRIMARY KEY,
    schedule     text NOT NULL,
    next_run_at  timestamptz NOT NULL,
    last_run_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT periodic_name_length CHECK (char_length(name) BETWEEN 1 AND 255)
) WITH (fillfactor = 50);

-- Unique keys whose scope includes final states: the hot table's unique index
-- only covers unfinished jobs, so a key that must also be held by a
-- completed (cancelled, discarded) job lives here. A key is free again when
-- its job finished in a state outside final_states, when it expires (keys
-- with a period expire at the period's end), or when its job is gone from
-- the archive (retention); the pruner deletes such rows.
CREATE TABLE {schema}.unique_keys (
    key           text PRIMARY KEY,
    job_id        bigint NOT NULL,
    final_states  {schema}.job_state[] NOT NULL,
    expires_at    timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------
-- The archive's dated partitions: one per UTC day, itself partitioned by
-- state, so retention per state drops whole tables:
--   jobs_archive (RANGE finished_at)
--   ├── jobs_archive_default            (anything outside the dated days)
--   └── jobs_archive_p20250101          (LIST state)
--       ├── jobs_archive_p20250101_completed
--       ├── jobs_archive_p20250101_cancelled
--       └── jobs_archive_p20250101_discarded
-- ---------------------------------------------------------------------------

-- Creates the partition of the UTC day `day` with its three leaves, moving the
-- rows the default partition holds for that day into it first (PostgreSQL
-- refuses a partition whose range the default partition has rows for).
-- Returns the partition's name, or NULL when it existed already.
CREATE FUNCTION {schema}.archive_partition_create(day date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo   timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi   timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
    part text := 'jobs_archive_p' || to_char(day, 'YYYYMMDD');
    st   text;
BEGIN
    IF to_regclass(format('%I.%I', '{schema_name}', part)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- Hold finishes off (they insert into the archive) until this commits:
    -- a row landing in the default partition between the move below and
    -- the ATTACH would fail the ATTACH, or the finish itself (23514).
    LOCK TABLE {schema}.jobs_archive IN SHARE ROW EXCLUSIVE MODE;
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

-- Creates the partitions of the UTC days from `at`'s to `days_ahead` days
-- later. Returns the names created.
CREATE FUNCTION {schema}.archive_partitions_ensure(at timestamptz, days_ahead integer) RETURNS SETOF text
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

-- Drops the archive's tables whose every row is older than its state's
-- retention at `at` (NULL keeps that state forever): a leaf of day D for
-- state S goes once D + 1 day <= at - keep_S; a day whose leaves would all go
-- is dropped whole. Returns the names dropped.
CREATE FUNCTION {schema}.archive_partitions_expire(
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

-- The archive's DDL runs with its owner's rights (SECURITY DEFINER), so a
-- worker role without ownership can still keep the partitions; nobody but
-- the roles granted EXECUTE may call these (see docs/OPERATIONS.md).
ALTER FUNCTION {schema}.archive_partition_create(date) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION {schema}.archive_partitions_ensure(timestamptz, integer)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION {schema}.archive_partitions_expire(timestamptz, interval, interval, interval)
    SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION {schema}.archive_partition_create(date) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.archive_partitions_ensure(timestamptz, integer) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.archive_partitions_expire(timestamptz, interval, interval, interval) FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- The SQL API: enqueue, enqueue_many, cancel, retry, pause, resume. Input is
-- checked with the rules of crates/skiplock/src/validate.rs, and a rejection
-- raises SQLSTATE 22023 (invalid_parameter_value) with a message naming the
-- field: `invalid queue: …`, `invalid jobs[3].priority: …`.
-- ---------------------------------------------------------------------------

-- A queue or kind name: 1 to max_bytes bytes of ASCII letters, digits and the
-- characters in `extra` (a regular-expression bracket tail), starting with a
-- letter or digit.
CREATE FUNCTION {schema}.check_name(field text, value text, max_bytes integer, extra text, extra_shown text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    bad   text;
    shown text := CASE WHEN char_length(value) <= 40 THEN '"' || value || '"'
                       ELSE '"' || left(value, 40) || '"…' END;
BEGIN
    IF value IS NULL OR value = '' THEN
        RAISE EXCEPTION 'invalid %: must not be empty', field USING ERRCODE = '22023';
    END IF;
    IF octet_length(value) > max_bytes THEN
        RAISE EXCEPTION 'invalid %: is % bytes long, the limit is %', field, octet_length(value), max_bytes
            USING ERRCODE = '22023';
    END IF;
    bad := substring(value FROM '[^A-Za-z0-9' || extra || ']');
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'invalid %: % contains %; allowed are ASCII letters, digits and %',
            field, shown, quote_literal(bad), extra_shown USING ERRCODE = '22023';
    END IF;
    IF value !~ '^[A-Za-z0-9]' THEN
        RAISE EXCEPTION 'invalid %: % must start with a letter or digit', field, shown USING ERRCODE = '22023';
    END IF;
END
$$;

-- Checks one job's fields; `prefix` is prepended to field names (`jobs[3].`).
-- The limits are validate.rs's: KIND_MAX 255, QUEUE_NAME_MAX 128,
-- PRIORITY_MAX 9, MAX_ATTEMPTS_LIMIT 10000, ARGS_MAX_BYTES_DEFAULT 1 MiB,
-- UNIQUE_KEY_MAX 512, SCHEDULE_HORIZON ten 366-day years.
CREATE FUNCTION {schema}.check_job(
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

-- Enqueues one job and returns its id. A run_at in the future schedules it.
-- With a unique key held by an unfinished job, nothing is inserted and the
-- holder's id is returned. Workers of the queue are woken when the
-- surrounding transaction commits.
CREATE FUNCTION {schema}.enqueue(
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

-- One field of a job object for enqueue_many: its JSON value when present
-- and not null, after checking its JSON type.
CREATE FUNCTION {schema}.job_field(job jsonb, field text, want text, prefix text) RETURNS jsonb
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

-- Enqueues the jobs of a JSON array, all or none, in one INSERT, and returns
-- their ids in input order (for a unique key held by an unfinished job, the
-- holder's id). Each element is an object with "kind" and optional "args"
-- (default {}), "queue", "priority", "run_at" (ISO 8601 text),
-- "max_attempts" and "unique_key"; unknown fields are refused.
CREATE FUNCTION {schema}.enqueue_many(jobs jsonb) RETURNS SETOF bigint
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

-- Cancels jobs: a job that is not running is archived as cancelled at once;
-- a running job is flagged and its worker told on the control channel (it
-- ends as cancelled when its handler stops). Returns (id, 'cancelled' |
-- 'cancelling') for the jobs found unfinished. Client::cancel calls this.
CREATE FUNCTION {schema}.cancel(ids bigint[]) RETURNS TABLE (id bigint, result text)
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

-- Retries jobs: a finished one moves back from the archive to the hot table
-- as available with at least one attempt left; a scheduled or retryable one
-- becomes available now. Returns the ids retried (running and unknown ids are
-- left out). A unique key taken by another unfinished job fails the call
-- (SQLSTATE 23505). Client::retry calls this.
CREATE FUNCTION {schema}.retry(ids bigint[]) RETURNS SETOF bigint
LANGUAGE sql AS $$
WITH input AS (
    SELECT DISTINCT unnest(ids) AS id
),
revived AS (
    DELETE FROM {schema}.jobs_archive a
    USING input i
    WHERE a.id = i.id
    RETURNING a.*
),
reinserted AS (
    INSERT INTO {schema}.jobs
        (id, run_at, created_at, attempted_at, state, attempt, max_attempts, timeout_ms, priority, queue,
         kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, now(), created_at, attempted_at, 'available', attempt, greatest(max_attempts, attempt + 1), timeout_ms,
           priority, queue, kind, args, unique_key, leased_by, errors, tags, meta
    FROM revived
    RETURNING id, queue
),
hurried AS (
    UPDATE {schema}.jobs j
    SET state = 'available', run_at = now()
    FROM input i
    WHERE j.id = i.id AND j.state IN ('scheduled', 'retryable')
    RETURNING j.id, j.queue
),
notified AS (
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT queue FROM reinserted UNION SELECT queue FROM hurried) q
)
SELECT id FROM reinserted, notified
UNION ALL
SELECT id FROM hurried, notified
$$;

-- Pauses (p_paused = true) or resumes a queue: claims check queues.paused,
-- so a paused queue yields no jobs from the next claim on; workers are told
-- on the control channel so a resumed queue is fetched at once. Returns the
-- new flag. Client::queue_pause and queue_resume call this.
CREATE FUNCTION {schema}.queue_set_paused(p_queue text, p_paused boolean) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM {schema}.check_name('queue', p_queue, 128, '_.:-', '_ . : -');
    IF p_paused IS NULL THEN
        RAISE EXCEPTION 'invalid paused: must not be null' USING ERRCODE = '22023';
    END IF;
    INSERT INTO {schema}.queues AS q (name, paused)
    VALUES (p_queue, p_paused)
    ON CONFLICT (name) DO UPDATE SET paused = EXCLUDED.paused, updated_at = now();
    PERFORM pg_notify('{schema_name}_control',
                      json_build_object(CASE WHEN p_paused THEN 'pause' ELSE 'resume' END, p_queue)::text);
    RETURN p_paused;
END
$$;

-- Stops claims from a queue: jobs keep arriving, running ones finish.
CREATE FUNCTION {schema}.pause(queue text) RETURNS void
LANGUAGE sql AS $$ SELECT {schema}.queue_set_paused(queue, true) $$;

-- Lets workers claim from a paused queue again; they are woken at once.
CREATE FUNCTION {schema}.resume(queue text) RETURNS void
LANGUAGE sql AS $$ SELECT {schema}.queue_set_paused(queue, false) $$;
