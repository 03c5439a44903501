-- Claim up to $2 available jobs of queue $1, oldest first, skipping rows other
-- claimers hold: the textbook SKIP LOCKED claim in one statement.
UPDATE skiplock_bench_ceiling.jobs
SET state = 'running', attempt = attempt + 1, attempted_at = now()
WHERE id IN (
    SELECT id
    FROM skiplock_bench_ceiling.jobs
    WHERE state = 'available' AND queue = $1
    ORDER BY priority, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id, kind, args
