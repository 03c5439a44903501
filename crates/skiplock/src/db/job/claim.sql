-- Claim up to $2 available jobs of queue $1 for worker $4, leased for $3 ms.
-- One statement: pick with SKIP LOCKED in (priority, run_at, id) order through
-- jobs_claim_idx, then mark them running with a fresh fencing token.
-- A paused queue yields nothing.
-- The picked ids go through an array (an InitPlan), so the update finds its
-- rows by primary key whatever the planner thinks of the table's size.
UPDATE {schema}.jobs j
SET state = 'running',
    attempt = j.attempt + 1,
    attempted_at = now(),
    lease_token = nextval('{schema}.lease_token_seq'),
    lease_expires_at = now() + $3 * interval '1 millisecond',
    leased_by = $4
WHERE j.id = ANY (ARRAY (
    SELECT id
    FROM {schema}.jobs
    WHERE state = 'available'
      AND queue = $1
      AND NOT EXISTS (SELECT 1 FROM {schema}.queues q WHERE q.name = $1 AND q.paused)
    ORDER BY priority, run_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
))
RETURNING j.id, j.queue, j.kind, j.args, j.priority, j.attempt, j.max_attempts,
          j.lease_token, j.lease_expires_at, j.run_at, j.created_at, j.attempted_at,
          j.tags, j.meta, j.timeout_ms
