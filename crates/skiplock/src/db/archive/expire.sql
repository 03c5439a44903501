-- Drops the archive's dated tables whose rows are all past their state's
-- retention at $1 (NULL: now): $2 completed, $3 cancelled, $4 discarded, in
-- ms (NULL: keep forever). Returns the names dropped.
SELECT dropped FROM {schema}.archive_partitions_expire(
    coalesce($1::timestamptz, now()),
    $2::bigint * interval '1 millisecond',
    $3::bigint * interval '1 millisecond',
    $4::bigint * interval '1 millisecond') AS dropped
