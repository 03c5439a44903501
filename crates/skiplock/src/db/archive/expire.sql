-- Drops the first of the archive's dated tables whose rows are all past
-- their state's retention at $1 (NULL, or later than now: now; retention
-- never looks ahead): $2 completed, $3 cancelled, $4 discarded, in ms (NULL:
-- keep forever). Returns the name dropped, if any: one table per call, so
-- each DROP (which locks the archive) is a transaction of its own.
SELECT dropped FROM {schema}.archive_partitions_expire(
    least($1::timestamptz, now()),
    $2::bigint * interval '1 millisecond',
    $3::bigint * interval '1 millisecond',
    $4::bigint * interval '1 millisecond') AS dropped
