-- Creates the first missing partition of the UTC days from $1's (NULL: now)
-- to $2 days later, moving the rows the default partition held for it.
-- Returns its name, if one was missing: one per call, so each is made in a
-- transaction of its own.
SELECT made FROM {schema}.archive_partitions_ensure(coalesce($1::timestamptz, now()), $2::integer) AS made
