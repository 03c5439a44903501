-- I: statement trigger with the aggregate over the transition table only
CREATE OR REPLACE FUNCTION skiplock.jobs_mark_inserted_i() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT n.queue, n.priority, min(n.run_at) AS run_at, min(n.id) AS id FROM inserted n
             WHERE n.state = 'available' GROUP BY n.queue, n.priority LOOP
    END LOOP;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS jobs_mark_inserted_i ON skiplock.jobs;
CREATE TRIGGER jobs_mark_inserted_i AFTER INSERT ON skiplock.jobs REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION skiplock.jobs_mark_inserted_i();
