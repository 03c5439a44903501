-- One job by id, from the hot table or else the archive.
SELECT id, queue, kind, args, state::text AS state, priority, run_at, attempt, max_attempts, timeout_ms,
       lease_token, lease_expires_at, leased_by, unique_key, errors, tags, meta,
       created_at, attempted_at, NULL::timestamptz AS finished_at, cancel_requested_at
FROM {schema}.jobs WHERE id = $1
UNION ALL
SELECT id, queue, kind, args, state::text, priority, run_at, attempt, max_attempts, timeout_ms,
       lease_token, NULL, leased_by, unique_key, errors, tags, meta,
       created_at, attempted_at, finished_at, NULL
FROM {schema}.jobs_archive WHERE id = $1
LIMIT 1
