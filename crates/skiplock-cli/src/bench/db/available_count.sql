-- Jobs ready to claim (read through the claim index).
SELECT count(*) FROM skiplock_bench.jobs WHERE state = 'available'
