-- The highest job id there is, hot or archived (0: none): a bulk action
-- acts on the jobs that matched when it was counted, none enqueued since.
-- No parameters.
SELECT greatest((SELECT max(id) FROM {schema}.jobs), (SELECT max(id) FROM {schema}.jobs_archive), 0)::bigint AS id
