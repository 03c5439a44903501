-- After a claim whose answer was lost (the server may have committed it):
-- give back the jobs leased to worker $1 that it does not know it holds ($2
-- ids and $3 tokens: every lease it holds), as if they had never been
-- claimed: available now, the attempt given back. Only live leases: an
-- expired one is the rescuer's. The worker id is unique among live workers
-- (the workers registry), so no other process's jobs are touched. Scans the
-- running jobs through jobs_lease_idx; a recovery path, run rarely.
WITH known AS (
    SELECT * FROM unnest($2::bigint[], $3::bigint[]) AS k(id, lease_token)
),
released AS (
    UPDATE {schema}.jobs j
    SET state = 'available',
        attempt = j.attempt - 1,
        lease_token = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL
    WHERE j.state = 'running'
      AND j.lease_expires_at > now()
      AND j.leased_by = $1
      AND j.cancel_requested_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM known k WHERE k.id = j.id AND k.lease_token = j.lease_token)
    RETURNING j.id, j.queue
),
notified AS (
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM released) q
)
SELECT id FROM released, notified
