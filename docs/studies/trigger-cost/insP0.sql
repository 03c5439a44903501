BEGIN;
SELECT 1;
INSERT INTO skiplock.jobs (kind) VALUES ('k');
COMMIT;
