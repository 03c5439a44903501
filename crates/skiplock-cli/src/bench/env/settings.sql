-- The server settings a benchmark report names, as the server shows them
-- (with units). $1: setting names; unknown ones come back NULL.
SELECT name, current_setting(name, true)
FROM unnest($1::text[]) AS name
