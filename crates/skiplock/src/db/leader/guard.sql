-- First statement of every maintenance pass's transaction: a row only while
-- worker $1 leads (its lease not expired by the database's clock at this
-- moment). The row stays locked FOR SHARE until the pass commits, so a
-- takeover (which must update the row) waits for the pass in flight, and no
-- two processes' passes ever overlap. Returns the database clock. Through the
-- owner's function (migration 0003); the lock is the transaction's.
SELECT at FROM {schema}.leader_guard($1::text) AS at
