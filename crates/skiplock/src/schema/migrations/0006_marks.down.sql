-- Reverts 0006_marks.
DROP TRIGGER IF EXISTS jobs_mark_updated ON {schema}.jobs;
DROP TRIGGER IF EXISTS jobs_mark_inserted ON {schema}.jobs;
DROP FUNCTION IF EXISTS {schema}.jobs_mark_updated();
DROP FUNCTION IF EXISTS {schema}.jobs_mark_inserted();
DROP FUNCTION IF EXISTS {schema}.queue_marks_prune();
DROP FUNCTION IF EXISTS {schema}.mark_advance(text, boolean, integer);
DROP FUNCTION IF EXISTS {schema}.mark_lower(text, smallint, timestamptz, bigint);
DROP FUNCTION IF EXISTS {schema}.queue_marks_of(text);
DROP FUNCTION IF EXISTS {schema}.mark_lock_key(text);
DROP TABLE IF EXISTS {schema}.queue_marks;
DROP SEQUENCE IF EXISTS {schema}.queue_marks_seq;
