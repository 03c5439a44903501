-- The hot table's dead and live tuples as the statistics collector counts
-- them, and when it was last vacuumed and analyzed (by hand or by
-- autovacuum). One row; no parameters.
SELECT coalesce(s.n_live_tup, 0) AS live,
       coalesce(s.n_dead_tup, 0) AS dead,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       now() AS db_now
FROM (SELECT '{schema}.jobs'::regclass AS relid) t
LEFT JOIN pg_stat_user_tables s ON s.relid = t.relid
