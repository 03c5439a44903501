-- skiplock schema, version 3: reliability fixes ("Reliability round 2").
--
-- `{schema}` is the validated, quoted schema name; `{schema_name}` the bare
-- one. Upper-case names in braces are the library's limits, rendered from
-- the Rust constants by `Schema::render` (the list is `LIMITS` in
-- crates/skiplock/src/schema/mod.rs), so the SQL checks and the Rust ones
-- cannot drift apart. A migration keeps the values of its day: changing
-- such a constant needs a new migration that re-creates what uses it.
--
-- The file is in sections, each self-contained and headed by a banner that
-- says what it changes and why. 0003_reliability.down.sql reverts them in
-- reverse order, restoring 0002's definitions exactly. Add a section at the
-- end, and its revert at the top of the down file.

-- ===========================================================================
-- 1. The archive's SECURITY DEFINER functions (review #13, S1).
--
-- They run the owner's DDL for every role granted EXECUTE (the worker role),
-- so they bound their arguments and raise SQLSTATE 22023 naming the one that
-- is out of bounds:
--   - `at` (the time a pass acts as of) lies within ARCHIVE_AT_WINDOW
--     ({ARCHIVE_AT_WINDOW_S} s) of the database's clock, and for retention
--     not after it: retention is never applied ahead of time, so today's
--     partition (still written to) is never dropped;
--   - `days_ahead` is 0 to ARCHIVE_DAYS_AHEAD_MAX ({ARCHIVE_DAYS_AHEAD_MAX});
--   - each retention is NULL (forever) or 0 to RETENTION_MAX
--     ({RETENTION_MAX_S} s).
-- And they run with TimeZone UTC and DateStyle ISO: the day's bounds went
-- into the ATTACH as text in the session's style (`11/12/2026 08:00:00 CST`
-- under `SQL, DMY` and Asia/Shanghai), which PostgreSQL read back as US
-- Central time, so the ATTACH failed (23514) on every pass.
-- ===========================================================================

-- Refuses an archive function's `at`: NULL, infinite, more than
-- ARCHIVE_AT_WINDOW before the database's clock, or after it by more than
-- that (`ahead`, making partitions) or at all (retention).
CREATE FUNCTION {schema}.archive_check_at(at timestamptz, ahead boolean) RETURNS void
LANGUAGE plpgsql STABLE SET TimeZone = 'UTC' SET DateStyle = 'ISO' AS $$
DECLARE
    window_ interval := {ARCHIVE_AT_WINDOW_S} * interval '1 second';
BEGIN
    IF at IS NULL THEN
        RAISE EXCEPTION 'invalid at: must not be null' USING ERRCODE = '22023';
    END IF;
    IF NOT isfinite(at) OR at < now() - window_ OR (ahead AND at > now() + window_) THEN
        RAISE EXCEPTION 'invalid at: % is more than % days from the database''s clock (%)',
            at, {ARCHIVE_AT_WINDOW_S} / 86400, now() USING ERRCODE = '22023';
    END IF;
    IF NOT ahead AND at > now() THEN
        RAISE EXCEPTION 'invalid at: % is after the database''s clock (%): retention never looks ahead', at, now()
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- Refuses a retention (`field` names it) that is negative or over
-- RETENTION_MAX; NULL keeps forever.
CREATE FUNCTION {schema}.archive_check_keep(field text, keep interval) RETURNS void
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF keep < interval '0' OR keep > {RETENTION_MAX_S} * interval '1 second' THEN
        RAISE EXCEPTION 'invalid %: % is out of range 0 to % days (NULL keeps forever)',
            field, keep, {RETENTION_MAX_S} / 86400 USING ERRCODE = '22023';
    END IF;
END
$$;

-- As in 0002, with the bounds above.
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
        END IF;
    END LOOP;
END
$$;

-- As in 0002, with the bounds above.
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

-- The owner's own entry point (EXECUTE is not granted to anyone): its body
-- is 0002's, its bounds now print as ISO text in UTC.
ALTER FUNCTION {schema}.archive_partition_create(date) SET TimeZone = 'UTC' SET DateStyle = 'ISO';

REVOKE EXECUTE ON FUNCTION {schema}.archive_check_at(timestamptz, boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.archive_check_keep(text, interval) FROM PUBLIC;

-- ===========================================================================
-- 2. The SQL API's input checks (review #15(a)).
--
-- check_job's limits are rendered from validate.rs's constants instead of
-- being copied by hand. job_field's integer check took 1.0 (equal to its
-- truncation), whose cast to integer then failed with 22P02 naming no field;
-- now an integer field takes the digits of an integer only, as the Rust
-- path's JSON does (serde_json reads 1.0 as a float), and says which field.
-- ===========================================================================

-- Checks one job's fields; `prefix` is prepended to field names (`jobs[3].`).
CREATE OR REPLACE FUNCTION {schema}.check_job(
    prefix text, kind text, args jsonb, queue text, priority integer, run_at timestamptz,
    max_attempts integer, unique_key text
) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM {schema}.check_name(prefix || 'kind', kind, {KIND_MAX}, '_.:/-', '_ . : / -');
    PERFORM {schema}.check_name(prefix || 'queue', queue, {QUEUE_NAME_MAX}, '_.:-', '_ . : -');
    IF args IS NULL THEN
        RAISE EXCEPTION 'invalid %args: must not be null (use ''{}'')', prefix USING ERRCODE = '22023';
    END IF;
    IF octet_length(args::text) > {ARGS_MAX_BYTES_DEFAULT} THEN
        RAISE EXCEPTION 'invalid %args: is % bytes of JSON, the limit is {ARGS_MAX_BYTES_DEFAULT}', prefix,
            octet_length(args::text) USING ERRCODE = '22023';
    END IF;
    IF priority IS NULL OR priority NOT BETWEEN 0 AND {PRIORITY_MAX} THEN
        RAISE EXCEPTION 'invalid %priority: % is out of range 0 (first) to {PRIORITY_MAX} (last)', prefix,
            coalesce(priority::text, 'null') USING ERRCODE = '22023';
    END IF;
    IF max_attempts IS NULL OR max_attempts NOT BETWEEN 1 AND {MAX_ATTEMPTS_LIMIT} THEN
        RAISE EXCEPTION 'invalid %max_attempts: % is out of range 1 to {MAX_ATTEMPTS_LIMIT}', prefix,
            coalesce(max_attempts::text, 'null') USING ERRCODE = '22023';
    END IF;
    IF run_at IS NULL THEN
        RAISE EXCEPTION 'invalid %run_at: must not be null', prefix USING ERRCODE = '22023';
    END IF;
    IF run_at < '1970-01-01 00:00:00+00' THEN
        RAISE EXCEPTION 'invalid %run_at: % is before 1970-01-01', prefix, run_at USING ERRCODE = '22023';
    END IF;
    IF run_at > now() + {SCHEDULE_HORIZON_S} * interval '1 second' THEN
        RAISE EXCEPTION 'invalid %run_at: % is more than ten years ahead', prefix, run_at USING ERRCODE = '22023';
    END IF;
    IF unique_key IS NOT NULL AND unique_key = '' THEN
        RAISE EXCEPTION 'invalid %unique_key: must not be empty', prefix USING ERRCODE = '22023';
    END IF;
    IF octet_length(unique_key) > {UNIQUE_KEY_MAX} THEN
        RAISE EXCEPTION 'invalid %unique_key: is % bytes long, the limit is {UNIQUE_KEY_MAX}', prefix,
            octet_length(unique_key) USING ERRCODE = '22023';
    END IF;
END
$$;

-- One field of a job object for enqueue_many: its JSON value when present
-- and not null, after checking its JSON type. An integer is digits alone:
-- jsonb keeps the digits after a number's point (1.0 stays 1.0) and prints
-- no exponent (1e0 is 1).
CREATE OR REPLACE FUNCTION {schema}.job_field(job jsonb, field text, want text, prefix text) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb := job -> field;
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN NULL;
    END IF;
    IF want = 'integer' THEN
        IF jsonb_typeof(v) <> 'number' OR (v #>> '{}') !~ '^-?[0-9]{1,10}$' THEN
            RAISE EXCEPTION 'invalid %: must be an integer, not %', prefix || field, v USING ERRCODE = '22023';
        END IF;
        IF abs((v #>> '{}')::bigint) > 2147483647 THEN
            RAISE EXCEPTION 'invalid %: must be an integer, not %', prefix || field, v USING ERRCODE = '22023';
        END IF;
    ELSIF want <> 'any' AND jsonb_typeof(v) <> want THEN
        RAISE EXCEPTION 'invalid %: must be a %, not %', prefix || field, want, v USING ERRCODE = '22023';
    END IF;
    RETURN v;
END
$$;

-- ===========================================================================
-- 3. skiplock.cancel locks the jobs first (review S7).
--
-- 0002's cancel was one statement: a job claimed between its snapshot and
-- its row lock (or a running job released meanwhile) matched neither the
-- waiting branch nor the running one, so it was left alone and not
-- reported; Client::cancel asked again, SQL callers could not know to.
-- Now the jobs are locked first (FOR UPDATE waits for a claim, finish or
-- rescue in flight, then holds the row), and the statement that cancels
-- them takes its snapshot after that, so it sees each job as it is and
-- nothing changes it until the caller's transaction ends.
-- ===========================================================================

-- Cancels jobs: a job that is not running is archived as cancelled at once;
-- a running job is flagged and its worker told on the control channel (it
-- ends as cancelled when its handler stops). Returns (id, 'cancelled' |
-- 'cancelling') for the jobs found unfinished. Client::cancel calls this.
CREATE OR REPLACE FUNCTION {schema}.cancel(ids bigint[]) RETURNS TABLE (id bigint, result text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    -- In id order, so concurrent cancels of overlapping sets cannot deadlock.
    PERFORM 1 FROM {schema}.jobs j WHERE j.id = ANY (ids) ORDER BY j.id FOR UPDATE;
    RETURN QUERY
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
    SELECT id, 'cancelling' FROM flagged, notified;
END
$$;
