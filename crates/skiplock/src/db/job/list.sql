-- Jobs, newest first, filtered: $1 state (NULL: any), $2 queue (NULL: any),
-- $3 kind (NULL: any), $4 only ids below this (NULL: from the newest; for
-- paging), $5 limit. Hot and archived jobs alike.
(SELECT id, queue, kind, args, state::text AS state, priority, run_at, attempt, max_attempts, timeout_ms,
        lease_token, lease_expires_at, leased_by, unique_key, errors, tags, meta,
        created_at, attempted_at, NULL::timestamptz AS finished_at, cancel_requested_at
 FROM {schema}.jobs
 WHERE ($1::text IS NULL OR state::text = $1)
   AND ($2::text IS NULL OR queue = $2)
   AND ($3::text IS NULL OR kind = $3)
   AND ($4::bigint IS NULL OR id < $4)
 ORDER BY id DESC
 LIMIT $5)
UNION ALL
(SELECT id, queue, kind, args, state::text, priority, run_at, attempt, max_attempts, timeout_ms,
        lease_token, NULL, leased_by, unique_key, errors, tags, meta,
        created_at, attempted_at, finished_at, NULL
 FROM {schema}.jobs_archive
 WHERE ($1::text IS NULL OR state::text = $1)
   AND ($2::text IS NULL OR queue = $2)
   AND ($3::text IS NULL OR kind = $3)
   AND ($4::bigint IS NULL OR id < $4)
 ORDER BY id DESC
 LIMIT $5)
ORDER BY id DESC
LIMIT $5
