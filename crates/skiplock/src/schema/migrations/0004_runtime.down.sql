-- Reverts 0004_runtime.
-- The archive's functions as migrations 0002 and 0003 made them.
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
DROP INDEX IF EXISTS {schema}.jobs_archive_default_finished_idx;
-- The leader functions as migration 0003 made them.
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
CREATE OR REPLACE FUNCTION {schema}.leader_guard(p_id text) RETURNS SETOF timestamptz
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
SELECT clock_timestamp()
FROM {schema}.leader
WHERE name = 'default' AND leader_id = p_id AND expires_at > clock_timestamp()
FOR SHARE
$$;
-- unique_key_holders as migration 0003 made it.
CREATE OR REPLACE FUNCTION {schema}.unique_key_holders(p_keys text[], p_finished boolean)
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
DROP TABLE IF EXISTS {schema}.workers;
