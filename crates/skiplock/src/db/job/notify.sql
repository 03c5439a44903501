-- Wake the workers of the queues $1 (sent when the transaction commits).
SELECT count(pg_notify('{schema_name}_insert', q)) FROM unnest($1::text[]) AS q
