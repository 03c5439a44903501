-- The job search (the dashboard's jobs page), hot and archived jobs alike:
-- $1 states (text names; NULL: any), $2 queue, $3 kind, $4 tag, $5 id,
-- $6 a document args must contain, $7 a path that must exist in args
-- (each NULL: any), $8 only ids below this (the next page), $9 only ids
-- above this (the page before; then oldest first), $10 no id above this,
-- $11 limit. Newest first unless $9 is given. Planned at each call with
-- its values (migration 0005's jobs_search).
SELECT * FROM {schema}.jobs_search($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
