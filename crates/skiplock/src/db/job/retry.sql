-- Operator retry of the jobs $1, through the SQL API's function (migration
-- 0002): finished jobs move back from the archive as available with at least
-- one attempt left; scheduled and retryable ones become available now.
-- Running jobs and unknown ids are not returned. A unique key taken by
-- another unfinished job fails the whole statement (SQLSTATE 23505).
SELECT r AS id FROM {schema}.retry($1::bigint[]) AS r
