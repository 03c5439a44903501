-- How many jobs match a search, up to a cap in each of the hot table and
-- the archive: $1 states (text names; NULL: any), $2 queue, $3 kind, $4 tag,
-- $5 id, $6 a document args must contain, $7 a path that must exist in args
-- (each NULL: any), $8 no id above this (NULL: none), $9 the cap.
SELECT {schema}.jobs_count($1, $2, $3, $4, $5, $6, $7, $8, $9) AS n
