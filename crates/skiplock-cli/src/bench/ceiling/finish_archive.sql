-- Finish a batch of claimed jobs by moving them to the archive, as skiplock
-- does (one statement: DELETE … RETURNING feeds the INSERT).
WITH done AS (
    DELETE FROM skiplock_bench_ceiling.jobs WHERE id = ANY ($1::bigint[])
    RETURNING *
)
INSERT INTO skiplock_bench_ceiling.jobs_archive
    (id, queue, kind, args, priority, state, attempt, run_at, created_at, attempted_at, finished_at)
SELECT id, queue, kind, args, priority, 'completed', attempt, run_at, created_at, attempted_at, now()
FROM done
