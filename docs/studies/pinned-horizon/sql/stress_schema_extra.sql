-- for the correctness stress: every produced id, and the invariant checker's samples
SET search_path = q;
CREATE TABLE produced (id bigint NOT NULL);
CREATE TABLE violations (at timestamptz DEFAULT clock_timestamp(), n bigint);
