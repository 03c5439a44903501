-- Reverts 0004_runtime.
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
