-- What holds back the oldest xmin of the cluster, which vacuum cannot pass
-- (dead jobs pile up in the hot table behind it): the oldest of a session's
-- snapshot or transaction, a replication slot, and a prepared transaction.
-- At most one row: kind ('session', 'replication slot', 'prepared
-- transaction'), who (a session's pid, a slot's or a prepared transaction's
-- name), its age in transactions, in seconds where known, and for a session
-- its user, application, state, client address and database. Never the text
-- of a query (it may hold secrets). No parameters.
WITH holders AS (
    SELECT 'session' AS kind, a.pid::text AS who, age(a.backend_xmin) AS xid_age,
           extract(epoch FROM now() - coalesce(a.xact_start, a.backend_start))::float8 AS secs,
           a.usename::text AS usename, a.application_name AS application, a.state,
           host(a.client_addr) AS client_addr, a.datname::text AS datname
    FROM pg_stat_activity a
    WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_backend_pid()
    UNION ALL
    SELECT 'replication slot', s.slot_name::text,
           greatest(age(s.xmin), age(s.catalog_xmin)), NULL::float8,
           NULL, NULL, CASE WHEN s.active THEN 'active' ELSE 'inactive' END, NULL, s.database::text
    FROM pg_replication_slots s
    WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
    UNION ALL
    SELECT 'prepared transaction', p.gid, age(p.transaction),
           extract(epoch FROM now() - p.prepared)::float8,
           p.owner::text, NULL, 'prepared', NULL, p.database::text
    FROM pg_prepared_xacts p
)
SELECT kind, who, xid_age::bigint AS xid_age, secs, usename, application, state, client_addr, datname
FROM holders
ORDER BY xid_age DESC, secs DESC NULLS LAST
LIMIT 1
