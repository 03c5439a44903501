-- Reverts 0005_dashboard.
DROP FUNCTION IF EXISTS {schema}.jobs_count(text[], text, text, text, bigint, jsonb, text[], bigint, bigint);
DROP FUNCTION IF EXISTS {schema}.jobs_search(text[], text, text, text, bigint, jsonb, text[], bigint, bigint, bigint, integer);
DROP FUNCTION IF EXISTS {schema}.jobs_search_states(text[]);
DROP INDEX IF EXISTS {schema}.jobs_archive_args_idx;
DROP INDEX IF EXISTS {schema}.jobs_archive_tags_idx;
DROP INDEX IF EXISTS {schema}.jobs_archive_kind_idx;
DROP INDEX IF EXISTS {schema}.jobs_archive_queue_idx;
ALTER TABLE {schema}.periodic DROP COLUMN IF EXISTS paused;
DROP TABLE IF EXISTS {schema}.queue_depth_counted;
DROP TABLE IF EXISTS {schema}.queue_depth;
DROP TABLE IF EXISTS {schema}.stats_hour;
DROP TABLE IF EXISTS {schema}.stats_minute;
DROP FUNCTION IF EXISTS {schema}.hist_add(bigint[], bigint[]);
