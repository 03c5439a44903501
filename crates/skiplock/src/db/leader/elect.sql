-- Become or stay the leader: worker $1 takes the leader row for $2 ms if it
-- holds it already or the holder's lease expired (database clock). Returns a
-- row only when $1 is the leader now: when it was elected, when its lease
-- ends, and the database's clock (to turn the lease into a local deadline).
INSERT INTO {schema}.leader AS l (name, leader_id, elected_at, expires_at)
VALUES ('default', $1, now(), now() + $2 * interval '1 millisecond')
ON CONFLICT (name) DO UPDATE
SET leader_id = EXCLUDED.leader_id,
    elected_at = CASE WHEN l.leader_id = EXCLUDED.leader_id THEN l.elected_at ELSE now() END,
    expires_at = EXCLUDED.expires_at
WHERE l.expires_at < now() OR l.leader_id = EXCLUDED.leader_id
RETURNING l.elected_at, l.expires_at, now() AS db_now
