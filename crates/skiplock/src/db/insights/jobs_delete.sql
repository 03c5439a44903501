-- Operator delete of the jobs $1, hot (unless running: cancel those first)
-- or archived: the rows are gone. Hot rows are locked in id order first, so
-- concurrent actions on overlapping sets cannot deadlock. A unique key a
-- deleted job held is free again. Returns the ids deleted.
WITH locked AS (
    SELECT id FROM {schema}.jobs
    WHERE id = ANY ($1::bigint[]) AND state <> 'running'
    ORDER BY id
    FOR UPDATE
),
hot AS (
    DELETE FROM {schema}.jobs j
    USING locked l
    WHERE j.id = l.id AND j.state <> 'running'
    RETURNING j.id
),
archived AS (
    DELETE FROM {schema}.jobs_archive a
    WHERE a.id = ANY ($1::bigint[])
    RETURNING a.id
)
SELECT id FROM hot
UNION ALL
SELECT id FROM archived
ORDER BY id
