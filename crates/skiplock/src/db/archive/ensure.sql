-- Creates the archive's partitions for the UTC days from $1's (NULL: now) to
-- $2 days later, moving rows the default partition held for them. Returns
-- the names created.
SELECT made FROM {schema}.archive_partitions_ensure(coalesce($1::timestamptz, now()), $2::integer) AS made
