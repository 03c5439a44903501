-- Operator cancel of the jobs $1, through the SQL API's function (migration
-- 0002): a job that is not running moves to the archive as cancelled at once;
-- a running job is flagged and its worker told on the control channel. Jobs
-- already finished (or unknown) are not returned.
SELECT id, result AS state FROM {schema}.cancel($1::bigint[])
