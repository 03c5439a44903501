COPY {schema}.jobs (id, queue, kind, args, priority, run_at, state, max_attempts, tags, meta, timeout_ms)
FROM STDIN (FORMAT binary)
