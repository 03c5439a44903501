-- One job without a unique key: the common single enqueue, which the batch
-- statement's arrays and CTEs would make several times as costly.
-- $1 queue, $2 kind, $3 args, $4 priority, $5 run_at (NULL: now() + $6),
-- $6 delay ms (NULL: 0), $7 max_attempts, $8 tags, $9 meta, $10 timeout ms,
-- $11 whether to wake the queue (the client's NOTIFY rate limit decides) if
-- the job is available at once. The insert returns only the id (the enqueue
-- role may read no more of a job); whether it is available comes from r.
WITH r AS (
    SELECT coalesce($5::timestamptz, now() + coalesce($6::bigint, 0) * interval '1 millisecond') AS run_at
),
inserted AS (
    INSERT INTO {schema}.jobs (queue, kind, args, priority, run_at, state, max_attempts, tags, meta, timeout_ms)
    SELECT $1, $2, $3, $4, r.run_at,
           CASE WHEN r.run_at > now() THEN 'scheduled' ELSE 'available' END::{schema}.job_state,
           $7, $8, $9, $10
    FROM r
    RETURNING id
),
notified AS (
    SELECT count(pg_notify('{schema_name}_insert', $1)) AS n FROM inserted, r WHERE r.run_at <= now() AND $11
)
SELECT id, (SELECT n FROM notified) AS notified FROM inserted
