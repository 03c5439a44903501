-- Reverts 0002_operations: the SQL API, the archive's dated partitions (their
-- rows go back to the default partition), periodic jobs, unique keys and the
-- leader row.
DROP FUNCTION IF EXISTS {schema}.pause(text);
DROP FUNCTION IF EXISTS {schema}.resume(text);
DROP FUNCTION IF EXISTS {schema}.queue_set_paused(text, boolean);
DROP FUNCTION IF EXISTS {schema}.retry(bigint[]);
DROP FUNCTION IF EXISTS {schema}.cancel(bigint[]);
DROP FUNCTION IF EXISTS {schema}.enqueue_many(jsonb);
DROP FUNCTION IF EXISTS {schema}.job_field(jsonb, text, text, text);
DROP FUNCTION IF EXISTS {schema}.enqueue(text, jsonb, text, integer, timestamptz, integer, text);
DROP FUNCTION IF EXISTS {schema}.check_job(text, text, jsonb, text, integer, timestamptz, integer, text);
DROP FUNCTION IF EXISTS {schema}.check_name(text, text, integer, text, text);

DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = '{schema}.jobs_archive'::regclass
          AND c.relname ~ '^jobs_archive_p[0-9]{8}$'
    LOOP
        EXECUTE format('ALTER TABLE {schema}.jobs_archive DETACH PARTITION %I.%I', '{schema_name}', part.relname);
        EXECUTE format('INSERT INTO {schema}.jobs_archive SELECT * FROM %I.%I', '{schema_name}', part.relname);
        EXECUTE format('DROP TABLE %I.%I', '{schema_name}', part.relname);
    END LOOP;
END
$$;

DROP FUNCTION IF EXISTS {schema}.archive_partitions_expire(timestamptz, interval, interval, interval);
DROP FUNCTION IF EXISTS {schema}.archive_partitions_ensure(timestamptz, integer);
DROP FUNCTION IF EXISTS {schema}.archive_partition_create(date);

DROP TABLE IF EXISTS {schema}.unique_keys;
DROP TABLE IF EXISTS {schema}.periodic;
DROP TABLE IF EXISTS {schema}.leader;
