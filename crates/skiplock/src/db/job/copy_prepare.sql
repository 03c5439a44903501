-- Before a COPY of $1 jobs: draw their ids, and read the database clock (the
-- COPY's run_at values are computed from it, never from the client's).
SELECT now() AS now,
       ARRAY(SELECT nextval('{schema}.jobs_id_seq') FROM generate_series(1, $1::bigint)) AS ids
