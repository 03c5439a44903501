-- First statement of every maintenance pass's transaction: a row only while
-- worker $1 leads (its lease not expired by the database's clock at this
-- moment). The row stays locked FOR KEY SHARE until the pass commits, so a
-- takeover (which must replace the row) waits for the pass in flight, and
-- no two processes' passes ever overlap; the leader's own renewal does not
-- wait. Returns the database clock. Through the owner's function
-- (migrations 0003, 0004); the lock is the transaction's.
--
-- It first bounds the rest of the transaction ($2 statement timeout, $3
-- lock timeout, $4 idle-in-transaction timeout, as PostgreSQL's settings
-- take them, e.g. '2500ms'): a pass that waits on a lock, or whose host
-- vanished mid-pass, ends by itself and lets a takeover through, instead of
-- holding the leader row for as long as the server's TCP keepalive takes.
-- (The limits are computed first: leader_guard's argument depends on them.)
WITH limits AS MATERIALIZED (
    SELECT set_config('statement_timeout', $2::text, true) AS st,
           set_config('lock_timeout', $3::text, true) AS lt,
           set_config('idle_in_transaction_session_timeout', $4::text, true) AS it
)
SELECT g.at
FROM limits
CROSS JOIN LATERAL {schema}.leader_guard(CASE WHEN limits.st IS NOT NULL THEN $1::text END) AS g(at)
