-- Finish a batch of claimed jobs by deleting them.
DELETE FROM skiplock_bench_ceiling.jobs WHERE id = ANY ($1::bigint[])
