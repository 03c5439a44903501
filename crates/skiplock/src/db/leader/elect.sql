-- Become or stay the leader: worker $1 takes the leader row for $2 ms if it
-- holds it already or the holder's lease expired (database clock). Returns a
-- row only when $1 is the leader now: when it was elected, when its lease
-- ends, and the database's clock (to turn the lease into a local deadline).
-- Through the owner's function (migrations 0003, 0004): the worker role has
-- no rights on the leader row itself.
--
-- A takeover waits for the old leader's pass in flight; $3 bounds that wait
-- (lock_timeout, e.g. '2500ms'), shorter than the client's own timeout, so
-- the server gives up before the client does and no backend is left waiting
-- on the lock after the client went away.
WITH limits AS MATERIALIZED (
    SELECT set_config('lock_timeout', $3::text, true) AS lt
)
SELECT e.elected_at, e.expires_at, e.db_now
FROM limits
CROSS JOIN LATERAL {schema}.leader_elect(CASE WHEN limits.lt IS NOT NULL THEN $1::text END, $2::bigint) AS e
