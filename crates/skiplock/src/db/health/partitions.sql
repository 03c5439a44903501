-- The archive's dated tables (jobs_archive_pYYYYMMDD, one per UTC day):
-- how many days from today on have one, whether today's does, the oldest
-- day kept, and how many rows (up to 1,000, counted no further) sit in the
-- default partition, which holds only what finished on a day without a
-- table of its own. No parameters.
WITH days AS (
    SELECT to_date(substr(c.relname, 15), 'YYYYMMDD') AS day
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = '{schema}.jobs_archive'::regclass
      AND c.relname ~ '^jobs_archive_p[0-9]{8}$'
), today AS (
    SELECT (now() AT TIME ZONE 'UTC')::date AS d
)
SELECT (SELECT count(*) FROM days, today WHERE day >= today.d) AS ahead,
       (SELECT EXISTS (SELECT 1 FROM days, today WHERE day = today.d)) AS has_today,
       (SELECT min(day) FROM days) AS oldest_day,
       (SELECT count(*) FROM (SELECT 1 FROM {schema}.jobs_archive_default LIMIT 1000) d) AS default_rows
