-- Reverts 0001_init: drops every object it created (and the jobs in them).
DROP TABLE IF EXISTS {schema}.queues;
DROP TABLE IF EXISTS {schema}.jobs_archive;
DROP TABLE IF EXISTS {schema}.jobs;
DROP SEQUENCE IF EXISTS {schema}.lease_token_seq;
DROP TYPE IF EXISTS {schema}.job_state;
