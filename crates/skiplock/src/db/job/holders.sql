-- The jobs holding the unique keys $1: (key, id). An unfinished job holds its
-- key in the hot table; a key whose scope includes final states may instead
-- be held (in unique_keys) by a finished job that is still in the archive.
-- Through the owner's function (migrations 0003 and 0004), so the enqueue
-- role reads no other job's key or state; it first frees the keys whose job
-- is gone, so the caller's next insert round takes them.
SELECT key AS unique_key, job_id AS id FROM {schema}.unique_key_holders($1::text[], true)
