-- Reverts 0004_runtime.
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
