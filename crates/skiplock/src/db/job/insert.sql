-- Insert many jobs in one statement; one element per job in each array:
-- $1 queue, $2 kind, $3 args, $4 priority, $5 run_at (NULL: now() + $6),
-- $6 delay ms (NULL: 0), $7 max_attempts, $8 unique_key (NULL: none),
-- $9 tags (a JSON array of strings, or NULL), $10 meta, $11 timeout ms (NULL:
-- the worker's default for the kind), $12 unique by (kind, args): the key is
-- `kind:<kind>:<md5 of the args' jsonb text>` unless $8 names one, $13 unique
-- period in seconds (NULL: none; else the period's start, UTC, is appended to
-- the key: `key@2025-01-01T10:00:00Z`), $14 final states that also hold the
-- key (NULL: none, the common case; else a text array literal such as
-- '{completed}'), $15 the queues to wake now (the client's NOTIFY rate
-- limit decides: client/wakeups.rs).
--
-- Ids are drawn up front, so the result can say which input row got which
-- id: `ids` in input order, and `inserted`, the ids actually inserted. A row
-- whose unique key is held inserts nothing; `taken_ids` and `taken_keys` name
-- those rows and their keys (the caller then looks the holders up). The
-- result is arrays rather than a join, so the planner's estimate stays
-- proportional to the batch (a join on unique_key was estimated at 50x the
-- rows, enough to set off JIT).
--
-- Unfinished jobs hold their key through the hot table's unique index. A key
-- whose scope includes final states is first claimed in unique_keys (taken
-- over only if it expired or its job finished outside that key's scope), by
-- the owner's function unique_keys_claim; a row whose claim failed is not
-- inserted. Both inserts go in key order, so concurrent batches with
-- overlapping keys take the index entries in one order and cannot deadlock.
-- The job insert's ON CONFLICT names no index (naming jobs_unique_key_idx
-- would need SELECT on unique_key, which the enqueue role has not): the ids
-- are new, so only a key can conflict. It returns only the ids (SELECT on
-- id alone): queues and states come from the input.
-- Jobs available at once wake their queue with one NOTIFY per queue, sent
-- when the surrounding transaction commits.
WITH input AS (
    SELECT nextval('{schema}.jobs_id_seq') AS id, t.*,
           coalesce(t.run_at_in, now() + coalesce(t.delay_ms, 0) * interval '1 millisecond') AS run_at,
           CASE WHEN t.key_in IS NOT NULL OR t.by_args THEN
               coalesce(t.key_in, 'kind:' || t.kind || ':' || md5(t.args::text))
               || CASE WHEN t.period_s IS NULL THEN ''
                       ELSE '@' || to_char(to_timestamp(floor(extract(epoch FROM now()) / t.period_s) * t.period_s)
                                           AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') END
           END AS unique_key,
           CASE WHEN t.period_s IS NOT NULL
                THEN to_timestamp((floor(extract(epoch FROM now()) / t.period_s) + 1) * t.period_s) END AS key_expires_at
    FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::smallint[], $5::timestamptz[], $6::bigint[],
                $7::integer[], $8::text[], $9::jsonb[], $10::jsonb[], $11::integer[], $12::boolean[],
                $13::bigint[], $14::text[]) WITH ORDINALITY
        AS t(queue, kind, args, priority, run_at_in, delay_ms, max_attempts, key_in, tags, meta, timeout_ms,
             by_args, period_s, final_states, ord)
),
claimed AS (
    -- In the owner's function (migration 0003): the take-over rule is
    -- inside it, so a caller can claim only free keys. Rows in input order.
    SELECT c.job_id
    FROM {schema}.unique_keys_claim(
        ARRAY(SELECT unique_key FROM input WHERE final_states IS NOT NULL AND unique_key IS NOT NULL ORDER BY ord),
        ARRAY(SELECT id FROM input WHERE final_states IS NOT NULL AND unique_key IS NOT NULL ORDER BY ord),
        ARRAY(SELECT final_states FROM input WHERE final_states IS NOT NULL AND unique_key IS NOT NULL ORDER BY ord),
        ARRAY(SELECT key_expires_at FROM input WHERE final_states IS NOT NULL AND unique_key IS NOT NULL ORDER BY ord)
    ) AS c(job_id)
    -- A one-time filter: no call at all for a batch without such keys.
    WHERE EXISTS (SELECT 1 FROM input WHERE final_states IS NOT NULL AND unique_key IS NOT NULL)
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
    WHERE final_states IS NULL OR id IN (SELECT job_id FROM claimed)
    ORDER BY unique_key, ord
    ON CONFLICT DO NOTHING
    RETURNING id
),
notified AS (
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT DISTINCT i.queue FROM input i
          WHERE i.id IN (SELECT id FROM inserted) AND i.run_at <= now() AND i.queue = ANY($15::text[])) q
),
taken AS (
    SELECT id, unique_key FROM input
    WHERE unique_key IS NOT NULL AND id NOT IN (SELECT id FROM inserted)
)
SELECT (SELECT array_agg(id ORDER BY ord) FROM input) AS ids,
       (SELECT array_agg(id) FROM inserted) AS inserted,
       (SELECT n FROM notified) AS notified,
       (SELECT array_agg(id ORDER BY id) FROM taken) AS taken_ids,
       (SELECT array_agg(unique_key ORDER BY id) FROM taken) AS taken_keys
