-- Deletes up to $5 rows of the archive's default partition that are past
-- their state's retention at $1 (NULL: now): $2 completed, $3 cancelled, $4
-- discarded, in ms (NULL: keep forever). The default partition holds only
-- what finished outside the dated days (before they were first created), so
-- this is usually nothing. Returns the number deleted.
WITH doomed AS (
    SELECT ctid
    FROM {schema}.jobs_archive_default
    WHERE (state = 'completed' AND finished_at < coalesce($1::timestamptz, now()) - $2::bigint * interval '1 millisecond')
       OR (state = 'cancelled' AND finished_at < coalesce($1::timestamptz, now()) - $3::bigint * interval '1 millisecond')
       OR (state = 'discarded' AND finished_at < coalesce($1::timestamptz, now()) - $4::bigint * interval '1 millisecond')
    LIMIT $5
),
deleted AS (
    DELETE FROM {schema}.jobs_archive_default a USING doomed d WHERE a.ctid = d.ctid
    RETURNING 1
)
SELECT count(*) AS n FROM deleted
