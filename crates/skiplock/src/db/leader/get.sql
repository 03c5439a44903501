-- The current leader, if its lease holds: id, elected_at, expires_at, and
-- the database's clock.
SELECT leader_id, elected_at, expires_at, now() AS db_now
FROM {schema}.leader
WHERE name = 'default' AND expires_at > now()
