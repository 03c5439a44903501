-- The jobs holding the unique keys $1: (key, id). An unfinished job holds its
-- key in the hot table; a key whose scope includes final states may instead
-- be held (in unique_keys) by a finished job that is still in the archive.
-- Through the owner's function (migration 0003), so the enqueue role reads
-- no other job's key or state.
SELECT key AS unique_key, job_id AS id FROM {schema}.unique_key_holders($1::text[], true)
