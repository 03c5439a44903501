-- Moves the low-water marks (migration 0006) of queues $1 up to each
-- priority's first available job. $2 true reads each priority from its start
-- instead of its mark (a repair: a worker's first pass). One row per queue:
-- whether its marks moved (false also when an enqueue in flight held the
-- queue's lock: that queue is skipped this turn, never waited for).
SELECT q AS queue, {schema}.mark_advance(q, $2) AS moved
FROM unnest($1::text[]) AS q
