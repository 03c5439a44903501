-- For the rest of this transaction: wait at most $1 for a lock (partition DDL
-- must not queue finishes behind it for long; it is retried next pass).
SELECT set_config('lock_timeout', $1::text, true)
