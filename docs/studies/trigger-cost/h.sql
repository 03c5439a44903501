-- H: statement trigger doing the probe only (no lock)
CREATE OR REPLACE FUNCTION skiplock.jobs_mark_inserted_h() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT n.queue, n.priority, min(n.run_at) AS run_at, min(n.id) AS id FROM inserted n
             WHERE n.state = 'available' GROUP BY n.queue, n.priority LOOP
        IF NOT EXISTS (SELECT 1 FROM (SELECT a.run_ats[r.priority + 1] AS run_at, a.ids[r.priority + 1] AS id
              FROM skiplock.queue_marks a WHERE a.queue = r.queue AND a.is_advance ORDER BY a.seq DESC LIMIT 1) m
              WHERE (r.run_at, r.id) < (m.run_at, m.id)) THEN
            CONTINUE;
        END IF;
        INSERT INTO skiplock.queue_marks (queue, is_advance, priority, run_at, id) VALUES (r.queue, false, r.priority, r.run_at, r.id);
    END LOOP;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS jobs_mark_inserted_h ON skiplock.jobs;
CREATE TRIGGER jobs_mark_inserted_h AFTER INSERT ON skiplock.jobs REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION skiplock.jobs_mark_inserted_h();
