-- Extend the leases of many running jobs by $3 ms, fenced by lease token (a
-- job holds one exactly while it runs), and
-- store the progress handlers reported ($4: JSON per job, NULL for none, kept
-- in meta.progress). Returns the leases still held (id, token), and whether
-- an operator asked to cancel them; a lease missing from the result was lost
-- (rescued or finished elsewhere).
UPDATE {schema}.jobs j
SET lease_expires_at = now() + $3 * interval '1 millisecond',
    meta = CASE WHEN t.progress IS NULL THEN j.meta
                ELSE jsonb_set(j.meta, '{progress}', t.progress) END
FROM unnest($1::bigint[], $2::bigint[], $4::jsonb[]) AS t(id, lease_token, progress)
WHERE j.id = t.id AND j.lease_token = t.lease_token
RETURNING j.id, j.lease_token, j.cancel_requested_at IS NOT NULL AS cancel_requested
