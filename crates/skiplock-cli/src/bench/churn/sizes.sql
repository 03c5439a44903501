-- The hot table's size (heap, indexes, TOAST; then heap and indexes apart),
-- its dead rows and autovacuum passes, and the archive's size (the sum of its
-- partitions).
SELECT pg_total_relation_size('skiplock_bench.jobs'),
       pg_relation_size('skiplock_bench.jobs'),
       pg_indexes_size('skiplock_bench.jobs'),
       s.n_dead_tup,
       s.autovacuum_count,
       (SELECT coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)::bigint
        FROM pg_inherits i
        WHERE i.inhparent = 'skiplock_bench.jobs_archive'::regclass)
FROM pg_stat_user_tables s
WHERE s.relid = 'skiplock_bench.jobs'::regclass
