-- The worker's statement: record the outcomes of many attempts and claim the
-- next batch, in one round trip and one commit (so one WAL flush where two
-- statements would need two). Either half may be empty.
--
-- Outcomes, one element per job: $1 id, $2 lease_token, $3 outcome, $4 error
-- text (or NULL), $5 delay in ms (for retry and snooze). Outcomes:
--   completed | cancelled | discarded  -> row moves to jobs_archive
--   failed    -> retryable after the delay, or discarded once attempts are used up
--   snoozed   -> scheduled after the delay (available if 0); the attempt is given back
--   released  -> available now; the attempt is given back (worker shutdown)
-- except that failed, snoozed and released end as cancelled when an operator
-- asked to cancel the job while it ran.
-- A job whose token no longer matches (rescued, reclaimed, cancelled) is not
-- touched and not returned: the caller reports it as stale. A job holds a
-- token exactly while it runs (constraint jobs_leased_iff_running), so the
-- fence is (id, lease_token); every modifying CTE repeats it so that a
-- concurrent change is re-checked on the new row version (EvalPlanQual).
--
-- Claim: up to $7 available jobs of queue $6 for worker $9, leased for $8 ms,
-- picked with SKIP LOCKED in (priority, run_at, id) order through
-- jobs_claim_idx, from each priority's low-water mark (so the dead entries of
-- consumed jobs, which vacuum cannot remove while a long transaction pins
-- the horizon, are not walked), marked running with a fresh fencing token. A paused queue
-- yields nothing. The picked ids go through an array (an InitPlan), so the
-- update finds its rows by primary key whatever the planner thinks of the
-- table's size. Jobs requeued by the first half are not seen by the second
-- (one snapshot): they are claimed next time.
--
-- $10 false deletes completed jobs without archiving them (the worker's
-- `keep_completed(false)`); cancelled and discarded ones are always kept.
--
-- Rows: ('finished', id, state, lease_token) per outcome written (the token
-- tells two attempts of one job apart), then ('claimed', id, job columns…)
-- per job claimed.
WITH input AS (
    SELECT *
    FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[])
        AS t(id, lease_token, outcome, error, delay_ms)
),
-- What each outcome makes of its job is decided from the row being written
-- (its attempts, and whether an operator asked to cancel it), inside the
-- DELETE and the UPDATE themselves: one probe of jobs_pkey per job, and a
-- cancel requested while this statement ran is seen on the new row version
-- (EvalPlanQual). An operator's cancel of a running job wins over every
-- outcome that would put the job back in the queue (the handler may never
-- have seen the cancel); a completion, the work done, stands. The two CASE
-- expressions below are the same in both statements:
--   next:  failed/snoozed/released and cancel requested -> cancelled;
--          failed with attempt >= max_attempts -> discarded; failed -> retryable;
--          otherwise the outcome itself.
--   error: the given error, or 'cancelled while running' for such a cancel.
-- `j.id = ANY ($1)` is redundant with the join, and there for the plan: a
-- probe of jobs_pkey whatever autoanalyze last saw (a join alone was once
-- planned as a walk of the whole index, every dead entry included, after
-- the table had been analysed nearly empty).
finished AS (
    DELETE FROM {schema}.jobs j
    USING input i
    WHERE j.id = ANY ($1::bigint[]) AND j.id = i.id AND j.lease_token = i.lease_token
      AND (CASE WHEN i.outcome IN ('failed', 'snoozed', 'released') AND j.cancel_requested_at IS NOT NULL
                THEN 'cancelled'
                WHEN i.outcome = 'failed' AND j.attempt >= j.max_attempts THEN 'discarded'
                WHEN i.outcome = 'failed' THEN 'retryable'
                ELSE i.outcome END) IN ('completed', 'cancelled', 'discarded')
    RETURNING j.*,
              CASE WHEN i.outcome IN ('failed', 'snoozed', 'released') AND j.cancel_requested_at IS NOT NULL
                   THEN 'cancelled'
                   WHEN i.outcome = 'failed' AND j.attempt >= j.max_attempts THEN 'discarded'
                   WHEN i.outcome = 'failed' THEN 'retryable'
                   ELSE i.outcome END AS next,
              CASE WHEN i.outcome IN ('failed', 'snoozed', 'released') AND j.cancel_requested_at IS NOT NULL
                   THEN coalesce(i.error, 'cancelled while running')
                   ELSE i.error END AS error
),
archived AS (
    INSERT INTO {schema}.jobs_archive
        (id, run_at, created_at, attempted_at, finished_at, lease_token, state, attempt,
         max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by, errors, tags, meta)
    SELECT id, run_at, created_at, attempted_at, now(), lease_token, next::{schema}.job_state,
           attempt, max_attempts, timeout_ms, priority, queue, kind, args, unique_key, leased_by,
           CASE WHEN error IS NULL THEN errors
                ELSE errors || jsonb_build_array(jsonb_build_object(
                    'attempt', attempt, 'at', now(), 'error', error)) END,
           tags, meta
    FROM finished
    WHERE $10 OR next <> 'completed'
),
requeued AS (
    -- Only outcomes that can put a job back are looked at (a completion's
    -- job is not probed twice); a cancel requested meanwhile makes them
    -- final, and the DELETE above takes them instead.
    UPDATE {schema}.jobs j
    SET state = CASE WHEN i.outcome = 'failed' AND i.delay_ms > 0 THEN 'retryable'
                     WHEN i.outcome = 'snoozed' AND i.delay_ms > 0 THEN 'scheduled'
                     ELSE 'available' END::{schema}.job_state,
        run_at = now() + greatest(i.delay_ms, 0) * interval '1 millisecond',
        attempt = CASE WHEN i.outcome IN ('snoozed', 'released') THEN j.attempt - 1 ELSE j.attempt END,
        errors = CASE WHEN i.error IS NULL THEN j.errors
                      ELSE j.errors || jsonb_build_array(jsonb_build_object(
                          'attempt', j.attempt, 'at', now(), 'error', i.error)) END,
        lease_token = NULL,
        lease_expires_at = NULL,
        cancel_requested_at = NULL
    FROM input i
    WHERE j.id = ANY ($1::bigint[]) AND j.id = i.id AND j.lease_token = i.lease_token
      AND i.outcome IN ('failed', 'snoozed', 'released')
      AND j.cancel_requested_at IS NULL
      AND NOT (i.outcome = 'failed' AND j.attempt >= j.max_attempts)
    RETURNING j.id, i.lease_token, j.queue, j.state::text AS state
),
notified AS (
    -- Jobs that became available now wake their queue's workers.
    SELECT count(pg_notify('{schema_name}_insert', q.queue)) AS n
    FROM (SELECT DISTINCT queue FROM requeued WHERE state = 'available') q
),
claimed AS (
    UPDATE {schema}.jobs j
    SET state = 'running',
        attempt = j.attempt + 1,
        attempted_at = now(),
        lease_token = nextval('{schema}.lease_token_seq'),
        lease_expires_at = now() + $8 * interval '1 millisecond',
        leased_by = $9
    WHERE j.id = ANY (ARRAY (
        -- Priority by priority, each from its low-water mark (migration
        -- 0006): a nested loop the LIMIT pulls lazily, so a priority with
        -- enough jobs ends it and only the rows returned are locked.
        SELECT c.id
        FROM {schema}.queue_marks_of($6) mk
        CROSS JOIN LATERAL (
            SELECT a.id
            FROM {schema}.jobs a
            WHERE a.state = 'available'
              AND a.queue = $6
              AND a.priority = mk.priority
              AND (a.run_at, a.id) >= (mk.run_at, mk.id)
            ORDER BY a.run_at, a.id
            LIMIT $7
            FOR UPDATE SKIP LOCKED
        ) c
        WHERE NOT EXISTS (SELECT 1 FROM {schema}.queues q WHERE q.name = $6 AND q.paused)
        LIMIT $7
    ))
    RETURNING j.id, j.queue, j.kind, j.args, j.priority, j.attempt, j.max_attempts,
              j.lease_token, j.lease_expires_at, j.run_at, j.created_at, j.attempted_at,
              j.tags, j.meta, j.timeout_ms
)
SELECT 'finished' AS row, id, next AS state, NULL::text AS queue, NULL::text AS kind, NULL::jsonb AS args,
       NULL::smallint AS priority, NULL::integer AS attempt, NULL::integer AS max_attempts,
       lease_token, NULL::timestamptz AS lease_expires_at, NULL::timestamptz AS run_at,
       NULL::timestamptz AS created_at, NULL::timestamptz AS attempted_at, NULL::text[] AS tags,
       NULL::jsonb AS meta, NULL::integer AS timeout_ms
FROM finished
UNION ALL
SELECT 'finished', id, state, NULL, NULL, NULL, NULL, NULL, NULL, lease_token, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM requeued, notified
UNION ALL
SELECT 'claimed', id, NULL, queue, kind, args, priority, attempt, max_attempts, lease_token,
       lease_expires_at, run_at, created_at, attempted_at, tags, meta, timeout_ms
FROM claimed
