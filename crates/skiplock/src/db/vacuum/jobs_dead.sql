-- The hot table's dead and live tuples, as the statistics collector counts
-- them (a moment behind).
SELECT coalesce(n_dead_tup, 0) AS dead, coalesce(n_live_tup, 0) AS live
FROM pg_stat_user_tables
WHERE relid = '{schema}.jobs'::regclass
