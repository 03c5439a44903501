-- The hot table's dead and live tuples, and the rows changed since it was
-- last analysed, as the statistics collector counts them (a moment behind);
-- and the row count the planner last recorded for it (pg_class.reltuples,
-- -1 if never analysed).
SELECT coalesce(s.n_dead_tup, 0) AS dead, coalesce(s.n_live_tup, 0) AS live,
       coalesce(s.n_mod_since_analyze, 0) AS changed, c.reltuples::bigint AS planned
FROM pg_class c
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.oid = '{schema}.jobs'::regclass
