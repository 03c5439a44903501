-- The jobs holding the unique keys $1: (key, id). An unfinished job holds its
-- key in the hot table; a key whose scope includes final states may instead
-- be held (in unique_keys) by a finished job that is still in the archive.
--
-- A unique_keys row whose job is in neither table holds nothing: it is freed
-- here (unique_keys_free_stale, migration 0004), so the caller's next insert
-- round takes the key at once.
WITH freed AS (
    SELECT key FROM {schema}.unique_keys_free_stale($1::text[]) AS key
)
SELECT unique_key, id FROM {schema}.jobs WHERE unique_key = ANY ($1::text[])
UNION ALL
SELECT u.key, u.job_id
FROM {schema}.unique_keys u
WHERE u.key = ANY ($1::text[])
  AND u.key NOT IN (SELECT key FROM freed)
  AND NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.unique_key = u.key)
  AND EXISTS (SELECT 1 FROM {schema}.jobs_archive a WHERE a.id = u.job_id)
