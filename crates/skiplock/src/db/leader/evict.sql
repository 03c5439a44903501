-- Ends the sessions that keep election backend $1 waiting on the leader row
-- and are not themselves waiting on a lock: a stuck pass of a former
-- leader, held past every limit it set itself. Called only after the
-- election was kept waiting for longer than any pass may last (see
-- maintenance/leader.rs), for the one case the server's own timeouts cannot
-- end: a session stopped in the middle of reading a message from its client
-- (a partition or a frozen process mid-send), where PostgreSQL ignores the
-- statement timeout and the idle-in-transaction timeout is not armed. The
-- stuck transaction rolls back; nothing it did is kept. Returns each pid and
-- whether it was signalled (an error if this role may not signal it).
SELECT a.pid, pg_terminate_backend(a.pid) AS ended
FROM unnest(pg_blocking_pids($1::int)) AS b(pid)
JOIN pg_stat_activity a ON a.pid = b.pid
WHERE a.wait_event_type IS DISTINCT FROM 'Lock'
