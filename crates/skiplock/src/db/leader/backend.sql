-- The backend of this connection, so another connection can see what keeps
-- this one waiting (evict.sql).
SELECT pg_backend_pid()
