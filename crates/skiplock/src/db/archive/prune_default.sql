-- Deletes up to $5 rows of the archive's default partition that are past
-- their state's retention at $1 (NULL, or later than now: now): $2
-- completed, $3 cancelled, $4 discarded, in ms (NULL: keep forever). The default partition holds only
-- what finished outside the dated days (before they were first created), so
-- this is usually nothing. Returns the number deleted. Through the owner's
-- function (migration 0003), which deletes only rows past retention, so the
-- worker role needs no DELETE on the archive.
SELECT {schema}.archive_prune_default(
    least($1::timestamptz, now()),
    $2::bigint * interval '1 millisecond',
    $3::bigint * interval '1 millisecond',
    $4::bigint * interval '1 millisecond',
    $5::bigint) AS n
