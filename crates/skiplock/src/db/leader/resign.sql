-- Give up leadership: delete the leader row if worker $1 holds it, so
-- another process takes over at its next attempt instead of after the lease.
-- Through the owner's function (migration 0003).
SELECT leader_id FROM {schema}.leader_resign($1::text) AS leader_id
