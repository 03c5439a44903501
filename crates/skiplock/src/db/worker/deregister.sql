-- Gives up worker id $1 if process instance $2 holds it (at shutdown), so
-- a process started with the same id may take it at once.
DELETE FROM {schema}.workers WHERE id = $1 AND instance = $2
RETURNING id
