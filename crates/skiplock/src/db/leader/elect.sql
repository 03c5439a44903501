-- Become or stay the leader: worker $1 takes the leader row for $2 ms if it
-- holds it already or the holder's lease expired (database clock). Returns a
-- row only when $1 is the leader now: when it was elected, when its lease
-- ends, and the database's clock (to turn the lease into a local deadline).
-- Through the owner's function (migration 0003): the worker role has no
-- rights on the leader row itself.
SELECT elected_at, expires_at, db_now FROM {schema}.leader_elect($1::text, $2::bigint)
