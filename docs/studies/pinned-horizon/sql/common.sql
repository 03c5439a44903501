-- Common to all designs: reset the schema, the state enum, the lease sequence,
-- the archive (as in 0001: RANGE(finished_at) partitions, one default, one id index).
DROP SCHEMA IF EXISTS q CASCADE;
CREATE SCHEMA q;
SET search_path = q;
CREATE TYPE job_state AS ENUM ('available','scheduled','running','retryable','completed','cancelled','discarded');
CREATE SEQUENCE lease_token_seq AS bigint CACHE 100;
CREATE TABLE jobs_archive (
    id bigint NOT NULL, run_at timestamptz NOT NULL, created_at timestamptz NOT NULL,
    attempted_at timestamptz, finished_at timestamptz NOT NULL, lease_token bigint,
    state job_state NOT NULL, attempt integer NOT NULL, max_attempts integer NOT NULL,
    timeout_ms integer, priority smallint NOT NULL, queue text NOT NULL, kind text NOT NULL,
    args jsonb NOT NULL, unique_key text, leased_by text, errors jsonb NOT NULL,
    tags text[] NOT NULL, meta jsonb NOT NULL
) PARTITION BY RANGE (finished_at);
CREATE TABLE jobs_archive_default PARTITION OF jobs_archive DEFAULT;
CREATE INDEX jobs_archive_id_idx ON jobs_archive (id);
-- a table the pinning session reads (it is not the queue)
CREATE TABLE pin_target (x int);
INSERT INTO pin_target VALUES (1);
