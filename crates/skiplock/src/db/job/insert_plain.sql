-- A batch of jobs without unique keys, too small for COPY: one statement
-- without the unique-key machinery of insert.sql (half its cost per row).
-- One element per job in each array: $1 queue, $2 kind, $3 args,
-- $4 priority, $5 run_at (NULL: now() + $6), $6 delay ms (NULL: 0),
-- $7 max_attempts, $8 tags (a JSON array of strings, or NULL), $9 meta,
-- $10 timeout ms; $11 the queues to wake now (the client's NOTIFY rate limit
-- decides). Rows are inserted in input order, so their ids, sorted, are in
-- input order too.
WITH inserted AS (
    INSERT INTO {schema}.jobs (queue, kind, args, priority, run_at, state, max_attempts, tags, meta, timeout_ms)
    SELECT t.queue, t.kind, t.args, t.priority, r.run_at,
           CASE WHEN r.run_at > now() THEN 'scheduled' ELSE 'available' END::{schema}.job_state,
           t.max_attempts,
           CASE WHEN t.tags IS NULL THEN '{}'::text[] ELSE ARRAY(SELECT jsonb_array_elements_text(t.tags)) END,
           t.meta, t.timeout_ms
    FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::timestamptz[], $6::bigint[],
                $7::integer[], $8::jsonb[], $9::jsonb[], $10::integer[]) WITH ORDINALITY
        AS t(queue, kind, args, priority, run_at_in, delay_ms, max_attempts, tags, meta, timeout_ms, ord)
    CROSS JOIN LATERAL (
        SELECT coalesce(t.run_at_in, now() + coalesce(t.delay_ms, 0) * interval '1 millisecond') AS run_at
    ) r
    ORDER BY t.ord
    RETURNING id
),
notified AS (
    -- From the input (every row is inserted, or the statement fails), not
    -- from the rows inserted: the enqueue role may read only their ids.
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT DISTINCT t.queue
          FROM unnest($1::text[], $5::timestamptz[], $6::bigint[]) AS t(queue, run_at_in, delay_ms)
          WHERE coalesce(t.run_at_in, now() + coalesce(t.delay_ms, 0) * interval '1 millisecond') <= now()
            AND t.queue = ANY($11::text[])) q
)
SELECT array_agg(id ORDER BY id) AS ids, (SELECT n FROM notified) AS notified FROM inserted
