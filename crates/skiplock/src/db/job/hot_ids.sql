-- Which of the ids $1 are still in the hot table (not finished).
SELECT id FROM {schema}.jobs WHERE id = ANY($1::bigint[])
