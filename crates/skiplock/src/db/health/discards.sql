-- In the last hour: jobs discarded by their workers (attempts used up, or
-- by their handler), and jobs the rescuer took back from workers whose
-- lease ran out (rescue.sql counts them as outcome `rescued`), from the
-- per-minute statistics (stats_minute's primary key leads with the minute:
-- a range scan of an hour's rows).
SELECT coalesce(sum(n) FILTER (WHERE outcome = 'discarded'), 0)::bigint AS discarded,
       coalesce(sum(n) FILTER (WHERE outcome = 'rescued'), 0)::bigint AS rescued
FROM {schema}.stats_minute
WHERE outcome IN ('discarded', 'rescued') AND minute >= date_trunc('minute', now() - interval '1 hour')
