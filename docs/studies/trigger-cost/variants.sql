-- E: statement trigger doing the lock and probe inline
CREATE OR REPLACE FUNCTION skiplock.jobs_mark_inserted_e() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT n.queue, n.priority, min(n.run_at) AS run_at, min(n.id) AS id FROM inserted n
             WHERE n.state = 'available' GROUP BY n.queue, n.priority LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('skiplock.mark.skiplock.' || r.queue, 0));
        IF NOT EXISTS (SELECT 1 FROM (SELECT a.run_ats[r.priority + 1] AS run_at, a.ids[r.priority + 1] AS id
              FROM skiplock.queue_marks a WHERE a.queue = r.queue AND a.is_advance ORDER BY a.seq DESC LIMIT 1) m
              WHERE (r.run_at, r.id) < (m.run_at, m.id)) THEN
            CONTINUE;
        END IF;
        INSERT INTO skiplock.queue_marks (queue, is_advance, priority, run_at, id) VALUES (r.queue, false, r.priority, r.run_at, r.id);
    END LOOP;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS jobs_mark_inserted_e ON skiplock.jobs;
CREATE TRIGGER jobs_mark_inserted_e AFTER INSERT ON skiplock.jobs REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION skiplock.jobs_mark_inserted_e();
-- F: row trigger doing it inline
CREATE OR REPLACE FUNCTION skiplock.jobs_mark_inserted_f() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(hashtextextended('skiplock.mark.skiplock.' || NEW.queue, 0));
    IF EXISTS (SELECT 1 FROM (SELECT a.run_ats[NEW.priority + 1] AS run_at, a.ids[NEW.priority + 1] AS id
          FROM skiplock.queue_marks a WHERE a.queue = NEW.queue AND a.is_advance ORDER BY a.seq DESC LIMIT 1) m
          WHERE (NEW.run_at, NEW.id) < (m.run_at, m.id)) THEN
        INSERT INTO skiplock.queue_marks (queue, is_advance, priority, run_at, id) VALUES (NEW.queue, false, NEW.priority, NEW.run_at, NEW.id);
    END IF;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS jobs_mark_inserted_f ON skiplock.jobs;
CREATE TRIGGER jobs_mark_inserted_f AFTER INSERT ON skiplock.jobs FOR EACH ROW WHEN (NEW.state = 'available') EXECUTE FUNCTION skiplock.jobs_mark_inserted_f();
