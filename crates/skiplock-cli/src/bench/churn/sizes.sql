-- The hot table's size (heap, indexes, TOAST; then heap and indexes apart),
-- its dead rows, its vacuums (autovacuum's, and others' such as the leader's),
-- and the archive's size (the sum of its partitions, at every level).
SELECT pg_total_relation_size('skiplock_bench.jobs'),
       pg_relation_size('skiplock_bench.jobs'),
       pg_indexes_size('skiplock_bench.jobs'),
       s.n_dead_tup,
       s.autovacuum_count,
       s.vacuum_count,
       (SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0)::bigint
        FROM pg_partition_tree('skiplock_bench.jobs_archive') p
        WHERE p.isleaf)
FROM pg_stat_user_tables s
WHERE s.relid = 'skiplock_bench.jobs'::regclass
