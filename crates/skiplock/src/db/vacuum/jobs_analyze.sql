ANALYZE (SKIP_LOCKED) {schema}.jobs
