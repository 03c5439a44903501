INSERT INTO skiplock.jobs (kind) VALUES ('k');
