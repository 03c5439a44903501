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

-- ===========================================================================
-- 4. Least privilege (review #13).
--
-- The roles of docs/OPERATIONS.md used to need wide grants for a few narrow
-- operations: the enqueue role UPDATE on unique_keys (to take over a key
-- that had expired) and SELECT of every job's key and state (to find a
-- key's holder); the worker role UPDATE and DELETE on jobs_archive,
-- unique_keys, leader and periodic. Each such operation now runs in a
-- SECURITY DEFINER function that does only that one thing, with its rules
-- inside and its arguments checked (SQLSTATE 22023 naming the argument), so
-- the roles are granted these functions instead of the tables:
--   unique_keys_claim     enqueue, worker   claim free keys (insert.sql)
--   unique_key_holders    enqueue, worker   who holds these keys (holders.sql)
--   unique_keys_prune     worker            delete keys that no longer hold
--   archive_prune_default worker            retention's deletes in the
--                                           default partition
--   leader_elect, leader_guard, leader_resign
--                         worker            the leader row, a lease of at
--                                           most LEADER_LEASE_MAX
-- And the SQL API's enqueue and enqueue_many (which run with the caller's
-- rights) no longer read jobs beyond the ids they inserted: the state of a
-- new job is computed before its insert, and a key's holder is asked of
-- unique_key_holders.
--
-- The functions below are revoked from PUBLIC: only roles granted EXECUTE
-- may call them.
-- ===========================================================================

-- Claims unique keys that outlive their job, for jobs about to be inserted:
-- key p_keys[i] for job p_job_ids[i], held also in the final states
-- p_final_states[i] (a text array literal such as '{completed}'), until
-- p_expires_at[i] (NULL: no expiry). A key taken already is taken over only
-- if it expired or its job finished in a state outside its scope. Returns
-- the job ids whose key was claimed. The first of a batch's rows with one
-- key wins, and keys are claimed in key order, so concurrent batches with
-- overlapping keys cannot deadlock.
CREATE FUNCTION {schema}.unique_keys_claim(
    p_keys text[], p_job_ids bigint[], p_final_states text[], p_expires_at timestamptz[]
) RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n integer := coalesce(cardinality(p_keys), 0);
BEGIN
    IF coalesce(cardinality(p_job_ids), 0) <> n OR coalesce(cardinality(p_final_states), 0) <> n
       OR coalesce(cardinality(p_expires_at), 0) <> n THEN
        RAISE EXCEPTION 'invalid keys: the four arrays must be as long' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_keys, p_job_ids) AS t(k, j) WHERE k IS NULL OR j IS NULL) THEN
        RAISE EXCEPTION 'invalid keys: a key or job id is null' USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_final_states) AS t(s)
               WHERE s IS NULL OR cardinality(s::{schema}.job_state[]) = 0
                  OR NOT s::{schema}.job_state[] <@ ARRAY['completed', 'cancelled', 'discarded']::{schema}.job_state[]) THEN
        RAISE EXCEPTION 'invalid final_states: each must be some of completed, cancelled, discarded'
            USING ERRCODE = '22023';
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(p_expires_at) AS t(e)
               WHERE e > now() + {SCHEDULE_HORIZON_S} * interval '1 second') THEN
        RAISE EXCEPTION 'invalid expires_at: more than ten years ahead' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    INSERT INTO {schema}.unique_keys AS u (key, job_id, final_states, expires_at)
    SELECT DISTINCT ON (t.k) t.k, t.j, t.s::{schema}.job_state[], t.e
    FROM unnest(p_keys, p_job_ids, p_final_states, p_expires_at) WITH ORDINALITY AS t(k, j, s, e, ord)
    ORDER BY t.k, t.ord
    ON CONFLICT (key) DO UPDATE
    SET job_id = EXCLUDED.job_id, final_states = EXCLUDED.final_states, expires_at = EXCLUDED.expires_at,
        created_at = now()
    WHERE u.expires_at <= now()
       OR EXISTS (SELECT 1 FROM {schema}.jobs_archive a WHERE a.id = u.job_id AND a.state <> ALL (u.final_states))
    RETURNING u.job_id;
END
$$;

-- The jobs holding the unique keys p_keys: (key, job_id). An unfinished job
-- holds its key in the hot table; with p_finished, a key whose scope
-- includes final states may instead be held (in unique_keys) by a finished
-- job still in the archive. It tells only of the keys asked for, which an
-- enqueue with that key would tell too.
CREATE FUNCTION {schema}.unique_key_holders(p_keys text[], p_finished boolean)
RETURNS TABLE (key text, job_id bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
SELECT j.unique_key, j.id FROM {schema}.jobs j WHERE j.unique_key = ANY (p_keys)
UNION ALL
SELECT u.key, u.job_id
FROM {schema}.unique_keys u
WHERE p_finished
  AND u.key = ANY (p_keys)
  AND NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.unique_key = u.key)
  AND EXISTS (SELECT 1 FROM {schema}.jobs_archive a WHERE a.id = u.job_id)
$$;

-- Deletes unique keys that no longer hold, looking at up to p_limit keys
-- after p_after (in key order; the pruner walks the table across passes):
-- expired ones, those whose job finished in a state outside the key's
-- final_states, and those whose job is gone (dropped by retention). Returns
-- the last key looked at (NULL at the end of the table) and how many were
-- deleted. The delete re-checks job_id, so a key taken over meanwhile is
-- kept.
CREATE FUNCTION {schema}.unique_keys_prune(p_after text, p_limit bigint) RETURNS TABLE (last text, n bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_after IS NULL THEN
        RAISE EXCEPTION 'invalid after: must not be null (the start is '''')' USING ERRCODE = '22023';
    END IF;
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'invalid limit: % is not a positive number of keys', coalesce(p_limit::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    WITH looked AS (
        SELECT u.key, u.job_id, u.final_states, u.expires_at
        FROM {schema}.unique_keys u
        WHERE u.key > p_after
        ORDER BY u.key
        LIMIT p_limit
    ),
    dead AS (
        SELECT l.key, l.job_id
        FROM looked l
        WHERE l.expires_at <= now()
           OR NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.id = l.job_id)
              AND NOT EXISTS (SELECT 1 FROM {schema}.jobs_archive a
                              WHERE a.id = l.job_id AND a.state = ANY (l.final_states))
    ),
    deleted AS (
        DELETE FROM {schema}.unique_keys u
        USING dead d
        WHERE u.key = d.key AND u.job_id = d.job_id
        RETURNING 1
    )
    SELECT (SELECT max(l.key) FROM looked l), (SELECT count(*) FROM deleted);
END
$$;

-- Retention in the archive's default partition (rows that finished outside
-- the dated days): deletes up to p_limit rows past their state's retention
-- at p_at (NULL keeps that state forever). The same bounds as
-- archive_partitions_expire. Returns the number deleted.
CREATE FUNCTION {schema}.archive_prune_default(
    p_at timestamptz, keep_completed interval, keep_cancelled interval, keep_discarded interval, p_limit bigint
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET DateStyle = 'ISO'
AS $$
DECLARE
    n bigint;
BEGIN
    PERFORM {schema}.archive_check_at(p_at, false);
    PERFORM {schema}.archive_check_keep('keep_completed', keep_completed);
    PERFORM {schema}.archive_check_keep('keep_cancelled', keep_cancelled);
    PERFORM {schema}.archive_check_keep('keep_discarded', keep_discarded);
    IF p_limit IS NULL OR p_limit < 1 THEN
        RAISE EXCEPTION 'invalid limit: % is not a positive number of rows', coalesce(p_limit::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    WITH doomed AS (
        SELECT ctid
        FROM {schema}.jobs_archive_default
        WHERE (state = 'completed' AND finished_at < p_at - keep_completed)
           OR (state = 'cancelled' AND finished_at < p_at - keep_cancelled)
           OR (state = 'discarded' AND finished_at < p_at - keep_discarded)
        LIMIT p_limit
    ),
    deleted AS (
        DELETE FROM {schema}.jobs_archive_default a USING doomed d WHERE a.ctid = d.ctid
        RETURNING 1
    )
    SELECT count(*) INTO n FROM deleted;
    RETURN n;
END
$$;

-- Becomes or stays the leader: p_id takes the leader row for p_lease_ms
-- (at most LEADER_LEASE_MAX, {LEADER_LEASE_MAX_MS} ms) if it holds it
-- already or the holder's lease expired (database clock). Returns a row only
-- when p_id leads now: when it was elected, when its lease ends, and the
-- database's clock.
CREATE FUNCTION {schema}.leader_elect(p_id text, p_lease_ms bigint)
RETURNS TABLE (elected_at timestamptz, expires_at timestamptz, db_now timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF p_lease_ms IS NULL OR p_lease_ms NOT BETWEEN 1 AND {LEADER_LEASE_MAX_MS} THEN
        RAISE EXCEPTION 'invalid lease: % ms is out of range 1 to {LEADER_LEASE_MAX_MS}', coalesce(p_lease_ms::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY
    INSERT INTO {schema}.leader AS l (name, leader_id, elected_at, expires_at)
    VALUES ('default', p_id, now(), now() + p_lease_ms * interval '1 millisecond')
    ON CONFLICT (name) DO UPDATE
    SET leader_id = EXCLUDED.leader_id,
        elected_at = CASE WHEN l.leader_id = EXCLUDED.leader_id THEN l.elected_at ELSE now() END,
        expires_at = EXCLUDED.expires_at
    WHERE l.expires_at < now() OR l.leader_id = EXCLUDED.leader_id
    RETURNING l.elected_at, l.expires_at, now();
END
$$;

-- The first statement of a maintenance pass's transaction: the database's
-- clock if p_id leads now (its lease not expired at this moment), with the
-- leader row locked FOR SHARE until the transaction ends, so a takeover
-- (which must update the row) waits for the pass; no row otherwise.
CREATE FUNCTION {schema}.leader_guard(p_id text) RETURNS SETOF timestamptz
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
SELECT clock_timestamp()
FROM {schema}.leader
WHERE name = 'default' AND leader_id = p_id AND expires_at > clock_timestamp()
FOR SHARE
$$;

-- Gives up leadership: deletes the leader row if p_id holds it. Returns the
-- id if it did.
CREATE FUNCTION {schema}.leader_resign(p_id text) RETURNS SETOF text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DELETE FROM {schema}.leader WHERE name = 'default' AND leader_id = p_id
RETURNING leader_id
$$;

REVOKE EXECUTE ON FUNCTION {schema}.unique_keys_claim(text[], bigint[], text[], timestamptz[]) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.unique_key_holders(text[], boolean) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.unique_keys_prune(text, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.archive_prune_default(timestamptz, interval, interval, interval, bigint)
    FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.leader_elect(text, bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.leader_guard(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION {schema}.leader_resign(text) FROM PUBLIC;

-- Enqueues one job and returns its id (0002's, reading no other job: the
-- new job's state is computed before the insert, and a unique key's holder
-- is asked of unique_key_holders). A run_at in the future schedules it.
-- With a unique key held by an unfinished job, nothing is inserted and the
-- holder's id is returned. Workers of the queue are woken when the
-- surrounding transaction commits.
CREATE OR REPLACE FUNCTION {schema}.enqueue(
    kind text,
    args jsonb,
    queue text DEFAULT 'default',
    priority integer DEFAULT {PRIORITY_DEFAULT},
    run_at timestamptz DEFAULT now(),
    max_attempts integer DEFAULT {MAX_ATTEMPTS_DEFAULT},
    unique_key text DEFAULT NULL
) RETURNS bigint
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    new_id    bigint;
    new_state {schema}.job_state;
BEGIN
    PERFORM {schema}.check_job('', kind, args, queue, priority, run_at, max_attempts, unique_key);
    new_state := CASE WHEN enqueue.run_at > now() THEN 'scheduled' ELSE 'available' END;
    -- A holder that finishes between the insert and the look-up frees its
    -- key: insert again (at most three times). The conflict is any unique
    -- index's (naming jobs_unique_key_idx would need SELECT on unique_key);
    -- the id is new, so only the key's can be.
    FOR attempt IN 1 .. 3 LOOP
        INSERT INTO {schema}.jobs AS j (queue, kind, args, priority, run_at, state, max_attempts, unique_key)
        VALUES (queue, kind, args, priority, run_at, new_state, max_attempts, unique_key)
        ON CONFLICT DO NOTHING
        RETURNING j.id INTO new_id;
        IF new_id IS NOT NULL THEN
            IF new_state = 'available' THEN
                PERFORM pg_notify('{schema_name}_insert', queue);
            END IF;
            RETURN new_id;
        END IF;
        SELECT h.job_id INTO new_id FROM {schema}.unique_key_holders(ARRAY[enqueue.unique_key], false) h;
        IF new_id IS NOT NULL THEN
            RETURN new_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'duplicate unique key "%": its holder keeps changing', unique_key USING ERRCODE = '23505';
END
$$;

-- Enqueues the jobs of a JSON array, all or none, in one INSERT, and returns
-- their ids in input order (for a unique key held by an unfinished job, the
-- holder's id). Each element is an object with "kind" and optional "args"
-- (default {}), "queue", "priority", "run_at" (ISO 8601 text),
-- "max_attempts" and "unique_key"; unknown fields are refused. (0002's,
-- reading no other job, as enqueue.)
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
        prios  := prios  || coalesce(({schema}.job_field(job, 'priority', 'integer', p) #>> '{}')::integer,
                                     {PRIORITY_DEFAULT});
        maxes  := maxes  || coalesce(({schema}.job_field(job, 'max_attempts', 'integer', p) #>> '{}')::integer,
                                     {MAX_ATTEMPTS_DEFAULT});
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
    -- take the key index's entries in one order (no deadlock). The queues
    -- to wake come from the input, joined to the ids inserted.
    WITH input AS (
        SELECT nextval('{schema}.jobs_id_seq') AS id, t.*,
               CASE WHEN t.run_at > now() THEN 'scheduled' ELSE 'available' END::{schema}.job_state AS state
        FROM unnest(kinds, argss, queues, prios, runs, maxes, keys) WITH ORDINALITY
            AS t(kind, args, queue, priority, run_at, max_attempts, unique_key, ord)
    ),
    inserted AS (
        INSERT INTO {schema}.jobs (id, queue, kind, args, priority, run_at, state, max_attempts, unique_key)
        SELECT id, queue, kind, args, priority, run_at, state, max_attempts, unique_key
        FROM input
        ORDER BY unique_key, ord
        ON CONFLICT DO NOTHING
        RETURNING id
    ),
    notified AS (
        SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
        FROM (SELECT DISTINCT i.queue FROM input i JOIN inserted d ON d.id = i.id WHERE i.state = 'available') q
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
            SELECT h.job_id INTO holder FROM {schema}.unique_key_holders(ARRAY[keys[k]], false) h;
            IF holder IS NULL THEN
                holder := {schema}.enqueue(kinds[k], argss[k], queues[k], prios[k], runs[k], maxes[k], keys[k]);
            END IF;
            RETURN NEXT holder;
        END IF;
    END LOOP;
END
$$;
