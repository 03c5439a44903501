-- Moves the low-water marks (migration 0006) of queues $1 up to each
-- priority's first available job, waiting up to $3[i] ms for queue i's lock
-- (0: not at all). $2 true reads each priority from its start instead of its
-- mark (a repair: a worker's first pass). One row per queue: 'moved', 'same'
-- or 'busy' (an enqueue in flight held the lock: skipped this turn).
SELECT t.q AS queue, {schema}.mark_advance(t.q, $2, t.w) AS state
FROM unnest($1::text[], $3::int[]) AS t(q, w)
