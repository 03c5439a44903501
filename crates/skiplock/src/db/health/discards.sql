-- Jobs discarded by their workers in the last hour (attempts used up, or by
-- their handler), from the per-minute statistics (stats_minute's primary
-- key leads with the minute: a range scan of an hour's rows). Jobs the
-- rescuer discards (a dead worker's last attempt) are not among them.
SELECT coalesce(sum(n), 0)::bigint
FROM {schema}.stats_minute
WHERE outcome = 'discarded' AND minute >= date_trunc('minute', now() - interval '1 hour')
