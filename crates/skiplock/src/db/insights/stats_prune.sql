-- Statistics retention: deletes merged minute rows before $1 and hour rows
-- before $2, at most $3 of each. Returns how many rows were deleted.
WITH minutes AS (
    DELETE FROM {schema}.stats_minute
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM {schema}.stats_minute WHERE worker = '' AND minute < $1 LIMIT $3))
    RETURNING 1
),
hours AS (
    DELETE FROM {schema}.stats_hour
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM {schema}.stats_hour WHERE hour < $2 LIMIT $3))
    RETURNING 1
)
SELECT ((SELECT count(*) FROM minutes) + (SELECT count(*) FROM hours))::bigint AS pruned
