-- Running jobs whose lease ran out more than $1 ms ago: the rescuer should
-- have taken them back by now (jobs_lease_idx). How many, and since when
-- the oldest lease ran out, in seconds.
SELECT count(*) AS n, extract(epoch FROM now() - min(lease_expires_at))::float8 AS oldest_secs
FROM {schema}.jobs
WHERE state = 'running' AND lease_expires_at < now() - $1::bigint * interval '1 millisecond'
