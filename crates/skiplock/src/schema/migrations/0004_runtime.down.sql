-- Reverts 0004_runtime.
DROP FUNCTION IF EXISTS {schema}.unique_keys_free_stale(text[]);
DROP TABLE IF EXISTS {schema}.workers;
