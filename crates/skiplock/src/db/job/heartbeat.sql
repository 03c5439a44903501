-- Extend the leases of many running jobs by $3 ms, fenced by lease token (a
-- job holds one exactly while it runs), and store the progress handlers
-- reported ($4: JSON per job, NULL for none, kept in meta.progress).
--
-- A worker's heartbeat also keeps its workers-registry row alive ($5 worker
-- id and $6 instance; NULL for none, as for Client::heartbeat), with the
-- same expiry as the leases, and records its running jobs ($7): the row and
-- the leases it extends live and die together.
--
-- Rows: (id, token, cancel_requested) per lease still held (a lease missing
-- from the result was lost: rescued or finished elsewhere), and one row
-- (NULL, NULL, NULL) when the registry row was kept alive.
WITH beat AS (
    UPDATE {schema}.jobs j
    SET lease_expires_at = now() + $3 * interval '1 millisecond',
        meta = CASE WHEN t.progress IS NULL THEN j.meta
                    ELSE jsonb_set(j.meta, '{progress}', t.progress) END
    FROM unnest($1::bigint[], $2::bigint[], $4::jsonb[]) AS t(id, lease_token, progress)
    WHERE j.id = t.id AND j.lease_token = t.lease_token
    RETURNING j.id, j.lease_token, j.cancel_requested_at IS NOT NULL AS cancel_requested
),
alive AS (
    UPDATE {schema}.workers w
    SET seen_at = now(), expires_at = now() + $3 * interval '1 millisecond', running = $7
    WHERE w.id = $5 AND w.instance = $6
    RETURNING w.id
)
SELECT id, lease_token, cancel_requested FROM beat
UNION ALL
SELECT NULL, NULL, NULL FROM alive
