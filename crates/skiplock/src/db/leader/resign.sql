-- Give up leadership: delete the leader row if worker $1 holds it, so
-- another process takes over at its next attempt instead of after the lease.
DELETE FROM {schema}.leader WHERE name = 'default' AND leader_id = $1
RETURNING leader_id
