-- skiplock schema, version 5: what the dashboard reads without scanning the
-- jobs table, and the indexes its job search needs.
--
-- `{schema}` is the validated, quoted schema name. See docs/DESIGN.md ("Why
-- per-worker statistics rows?") and docs/OPERATIONS.md ("Dashboard").

-- ---------------------------------------------------------------------------
-- Queue-time histograms: bigint[] of counts, element i (1-based) counting the
-- attempts whose queue time (run_at to start) fell in log bucket i - 1
-- (runtime/stats.rs: four buckets per doubling of milliseconds). Arrays of
-- different lengths add element by element.
-- ---------------------------------------------------------------------------
CREATE FUNCTION {schema}.hist_add(a bigint[], b bigint[]) RETURNS bigint[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT coalesce(array_agg(coalesce(a[i], 0) + coalesce(b[i], 0) ORDER BY i), '{}'::bigint[])
FROM generate_series(1, greatest(coalesce(cardinality(a), 0), coalesce(cardinality(b), 0))) AS i
$$;

-- ---------------------------------------------------------------------------
-- Per-minute statistics. Each worker process keeps its own counts in memory
-- and upserts its own rows (worker = its worker id) every few seconds with
-- the totals so far, so no row is written by two processes and a repeated
-- write changes nothing. The leader merges the rows of minutes that ended a
-- few minutes ago into one row per (minute, queue, kind, outcome) with
-- worker = '', adds them to stats_hour, and prunes both by their own
-- retention (maintenance/stats.rs).
--   outcome: completed, retried (a failed attempt that will run again),
--            discarded, cancelled, snoozed.
-- ---------------------------------------------------------------------------
CREATE TABLE {schema}.stats_minute (
    minute    timestamptz NOT NULL,
    worker    text NOT NULL,
    queue     text NOT NULL,
    kind      text NOT NULL,
    outcome   text NOT NULL,
    n         bigint NOT NULL,
    queue_ms  bigint[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (minute, worker, queue, kind, outcome)
) WITH (fillfactor = 70);

-- The leader's merge: the workers' rows, oldest first.
CREATE INDEX stats_minute_unmerged_idx ON {schema}.stats_minute (minute) WHERE worker <> '';

CREATE TABLE {schema}.stats_hour (
    hour      timestamptz NOT NULL,
    queue     text NOT NULL,
    kind      text NOT NULL,
    outcome   text NOT NULL,
    n         bigint NOT NULL,
    queue_ms  bigint[] NOT NULL DEFAULT '{}',
    PRIMARY KEY (hour, queue, kind, outcome)
) WITH (fillfactor = 70);

-- ---------------------------------------------------------------------------
-- Queue depth: the hot table's counts by queue and state, and each queue's
-- oldest available job, counted by the leader every few seconds (one GROUP
-- BY of the hot table per interval, by one process), so a page view reads
-- a few rows instead of scanning the jobs table.
-- ---------------------------------------------------------------------------
CREATE TABLE {schema}.queue_depth (
    queue          text NOT NULL,
    state          text NOT NULL,
    n              bigint NOT NULL,
    oldest_run_at  timestamptz,
    PRIMARY KEY (queue, state)
) WITH (fillfactor = 50);

-- When the depth was last counted, and how long the count took.
CREATE TABLE {schema}.queue_depth_counted (
    one         boolean PRIMARY KEY DEFAULT true,
    counted_at  timestamptz NOT NULL,
    took_ms     double precision NOT NULL,
    CONSTRAINT queue_depth_counted_one CHECK (one)
) WITH (fillfactor = 50);

-- ---------------------------------------------------------------------------
-- Periodic jobs an operator paused: the leader moves their next run on as
-- usual but enqueues nothing (db/periodic/advance.sql), so resuming one does
-- not back-fill the runs it skipped.
-- ---------------------------------------------------------------------------
ALTER TABLE {schema}.periodic ADD COLUMN paused boolean NOT NULL DEFAULT false;

-- ---------------------------------------------------------------------------
-- The job search's indexes on the archive (each dated partition gets them
-- too). The archive is searched newest first by id; a filter by queue or
-- kind walks (queue, id) or (kind, id) in id order, and a tag or a value
-- inside args is looked up by GIN. Each index is a write per finished job:
-- docs/DESIGN.md ("Why these archive indexes?") has the cost.
-- ---------------------------------------------------------------------------
CREATE INDEX jobs_archive_queue_idx ON {schema}.jobs_archive (queue, id);
CREATE INDEX jobs_archive_kind_idx ON {schema}.jobs_archive (kind, id);
CREATE INDEX jobs_archive_tags_idx ON {schema}.jobs_archive USING gin (tags);
CREATE INDEX jobs_archive_args_idx ON {schema}.jobs_archive USING gin (args jsonb_path_ops);

-- ---------------------------------------------------------------------------
-- The job search: hot and archived jobs matching every filter given (NULL:
-- any), newest first below p_before (or oldest first above p_after, for the
-- page before), at most p_limit, none above p_max_id. The query runs through
-- EXECUTE, so it is planned at each call with the values given: a NULL
-- filter folds away, a state filter prunes the archive's partitions, and a
-- queue, kind, tag or args filter can use its index. (The client's
-- connections force generic plans, which would plan the optional filters
-- once for every combination, and walk the whole archive for a rare one.)
-- Values reach the query only as parameters (USING), never as text.
--   p_states     states (text names), NULL: all
--   p_args       a document args must contain (@>), NULL: any
--   p_args_path  a path that must exist in args (#>), NULL: any
-- ---------------------------------------------------------------------------
-- The state filter of the job search as SQL text: `true`, or `state IN
-- ('completed'::job_state, …)`. Each state is checked against the enum (an
-- unknown one fails with SQLSTATE 22P02) and quoted with quote_literal, so
-- nothing else can reach the text. Enum literals are constants to the
-- planner, which then prunes the archive's partitions by state; a text[]
-- parameter cast to job_state[] is not (the cast is only stable).
CREATE FUNCTION {schema}.jobs_search_states(p_states text[]) RETURNS text
LANGUAGE sql STABLE AS $fn$
SELECT CASE WHEN p_states IS NULL THEN 'true'
            ELSE '(state IN (' || coalesce((SELECT string_agg(quote_literal(st::{schema}.job_state::text) || '::{schema}.job_state', ', ')
                                   FROM unnest(p_states) AS st), 'NULL') || '))'
       END
$fn$;

CREATE FUNCTION {schema}.jobs_search(
    p_states text[], p_queue text, p_kind text, p_tag text, p_id bigint, p_args jsonb, p_args_path text[],
    p_before bigint, p_after bigint, p_max_id bigint, p_limit integer
) RETURNS TABLE (
    id bigint, queue text, kind text, args jsonb, state text, priority smallint, run_at timestamptz,
    attempt integer, max_attempts integer, timeout_ms integer, lease_token bigint,
    lease_expires_at timestamptz, leased_by text, unique_key text, errors jsonb, tags text[], meta jsonb,
    created_at timestamptz, attempted_at timestamptz, finished_at timestamptz, cancel_requested_at timestamptz
)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    dir text := CASE WHEN p_after IS NULL THEN 'DESC' ELSE 'ASC' END;
    -- With a tag or a document to contain, the GIN index finds the matches
    -- and they are sorted: walking the id index instead would read a whole
    -- partition that has none (a tag only failed jobs carry, say). `id + 0`
    -- keeps the id index from being used for the order. Without the GIN
    -- index (an operator may drop it to make finishes cheaper: OPERATIONS.md)
    -- the id walk is the better plan.
    ord text := CASE WHEN (p_tag IS NOT NULL AND to_regclass('{schema}.jobs_archive_tags_idx') IS NOT NULL)
                       OR (p_args IS NOT NULL AND to_regclass('{schema}.jobs_archive_args_idx') IS NOT NULL)
                     THEN '(id + 0)' ELSE 'id' END;
    filters text := {schema}.jobs_search_states(p_states) || '
          AND ($2::text IS NULL OR queue = $2)
          AND ($3::text IS NULL OR kind = $3)
          AND ($4::text IS NULL OR tags @> ARRAY[$4::text])
          AND ($5::bigint IS NULL OR id = $5)
          AND ($6::jsonb IS NULL OR args @> $6)
          AND ($7::text[] IS NULL OR args #> $7 IS NOT NULL)
          AND ($8::bigint IS NULL OR id < $8)
          AND ($9::bigint IS NULL OR id > $9)
          AND ($10::bigint IS NULL OR id <= $10)';
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100000 THEN
        RAISE EXCEPTION 'invalid limit: % is out of range 1 to 100000', coalesce(p_limit::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY EXECUTE format(
        '(SELECT id, queue, kind, args, state::text, priority, run_at, attempt, max_attempts, timeout_ms,
                 lease_token, lease_expires_at, leased_by, unique_key, errors, tags, meta,
                 created_at, attempted_at, NULL::timestamptz, cancel_requested_at
          FROM {schema}.jobs
          WHERE ($1 IS NULL OR $1 && ARRAY[''available'', ''scheduled'', ''running'', ''retryable'']) AND %1$s
          ORDER BY %3$s %2$s LIMIT $11)
         UNION ALL
         (SELECT id, queue, kind, args, state::text, priority, run_at, attempt, max_attempts, timeout_ms,
                 lease_token, NULL::timestamptz, leased_by, unique_key, errors, tags, meta,
                 created_at, attempted_at, finished_at, NULL::timestamptz
          FROM {schema}.jobs_archive
          WHERE ($1 IS NULL OR $1 && ARRAY[''completed'', ''cancelled'', ''discarded'']) AND %1$s
          ORDER BY %3$s %2$s LIMIT $11)
         ORDER BY 1 %2$s LIMIT $11', filters, dir, ord)
    USING p_states, p_queue, p_kind, p_tag, p_id, p_args, p_args_path, p_before, p_after, p_max_id, p_limit;
END
$fn$;

-- How many jobs match the search's filters (the page cursors aside), up to
-- p_cap in each of the hot table and the archive: the count a bulk action
-- shows before it runs. Planned per call, as jobs_search.
CREATE FUNCTION {schema}.jobs_count(
    p_states text[], p_queue text, p_kind text, p_tag text, p_id bigint, p_args jsonb, p_args_path text[],
    p_max_id bigint, p_cap bigint
) RETURNS bigint
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    n bigint;
    filters text := {schema}.jobs_search_states(p_states) || '
          AND ($2::text IS NULL OR queue = $2)
          AND ($3::text IS NULL OR kind = $3)
          AND ($4::text IS NULL OR tags @> ARRAY[$4::text])
          AND ($5::bigint IS NULL OR id = $5)
          AND ($6::jsonb IS NULL OR args @> $6)
          AND ($7::text[] IS NULL OR args #> $7 IS NOT NULL)
          AND ($8::bigint IS NULL OR id <= $8)';
BEGIN
    IF p_cap IS NULL OR p_cap NOT BETWEEN 1 AND 10000000 THEN
        RAISE EXCEPTION 'invalid cap: % is out of range 1 to 10000000', coalesce(p_cap::text, 'null')
            USING ERRCODE = '22023';
    END IF;
    EXECUTE format(
        'SELECT count(*) FROM (
            (SELECT 1 FROM {schema}.jobs
             WHERE ($1 IS NULL OR $1 && ARRAY[''available'', ''scheduled'', ''running'', ''retryable'']) AND %1$s
             LIMIT $9)
            UNION ALL
            (SELECT 1 FROM {schema}.jobs_archive
             WHERE ($1 IS NULL OR $1 && ARRAY[''completed'', ''cancelled'', ''discarded'']) AND %1$s
             LIMIT $9)) AS matched', filters)
    INTO n
    USING p_states, p_queue, p_kind, p_tag, p_id, p_args, p_args_path, p_max_id, p_cap;
    RETURN n;
END
$fn$;
