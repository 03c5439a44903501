-- Insert many jobs in one statement; one element per job in each array:
-- $1 queue, $2 kind, $3 args, $4 priority, $5 run_at (NULL: now() + $6),
-- $6 delay ms (NULL: 0), $7 max_attempts, $8 unique_key (NULL: none),
-- $9 tags (a JSON array of strings, or NULL), $10 meta, $11 timeout ms (NULL:
-- the worker's default for the kind).
--
-- Ids are drawn up front, so the result can say which input row got which
-- id: `ids` in input order, and `inserted`, the ids actually inserted. A row
-- whose unique key is held by an unfinished job inserts nothing (the caller
-- then looks the holder up). The result is two arrays rather than a join, so
-- the planner's estimate stays proportional to the batch (a join on
-- unique_key was estimated at 50x the rows, enough to set off JIT).
-- Jobs available at once wake their queue with one NOTIFY per queue, sent
-- when the surrounding transaction commits.
WITH input AS (
    SELECT nextval('{schema}.jobs_id_seq') AS id, t.*,
           coalesce(t.run_at_in, now() + coalesce(t.delay_ms, 0) * interval '1 millisecond') AS run_at
    FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::timestamptz[], $6::bigint[],
                $7::integer[], $8::text[], $9::jsonb[], $10::jsonb[], $11::integer[]) WITH ORDINALITY
        AS t(queue, kind, args, priority, run_at_in, delay_ms, max_attempts, unique_key, tags, meta, timeout_ms, ord)
),
inserted AS (
    INSERT INTO {schema}.jobs
        (id, queue, kind, args, priority, run_at, state, max_attempts, unique_key, tags, meta, timeout_ms)
    SELECT id, queue, kind, args, priority, run_at,
           CASE WHEN run_at > now() THEN 'scheduled' ELSE 'available' END::{schema}.job_state,
           max_attempts, unique_key,
           CASE WHEN tags IS NULL THEN '{}'::text[] ELSE ARRAY(SELECT jsonb_array_elements_text(tags)) END,
           meta, timeout_ms
    FROM input
    ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING
    RETURNING id, queue, state
),
notified AS (
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') q
)
SELECT (SELECT array_agg(id ORDER BY ord) FROM input) AS ids,
       (SELECT array_agg(id) FROM inserted) AS inserted,
       (SELECT n FROM notified) AS notified
