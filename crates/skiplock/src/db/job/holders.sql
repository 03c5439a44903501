-- The unfinished jobs holding the unique keys $1: (key, id).
SELECT unique_key, id FROM {schema}.jobs WHERE unique_key = ANY($1::text[])
