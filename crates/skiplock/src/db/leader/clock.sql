-- The database's clock now (not the transaction's start): the end of a
-- maintenance pass, as reported.
SELECT clock_timestamp() AS at
