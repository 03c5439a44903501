-- First statement of every maintenance pass's transaction: a row only while
-- worker $1 leads (its lease not expired by the database's clock at this
-- moment). The row stays locked FOR SHARE until the pass commits, so a
-- takeover (which must update the row) waits for the pass in flight, and no
-- two processes' passes ever overlap. Returns the database clock.
SELECT clock_timestamp() AS at
FROM {schema}.leader
WHERE name = 'default' AND leader_id = $1 AND expires_at > clock_timestamp()
FOR SHARE
