-- G: statement trigger taking the lock only (no probe)
CREATE OR REPLACE FUNCTION skiplock.jobs_mark_inserted_g() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT n.queue, n.priority, min(n.run_at) AS run_at, min(n.id) AS id FROM inserted n
             WHERE n.state = 'available' GROUP BY n.queue, n.priority LOOP
        PERFORM pg_advisory_xact_lock_shared(hashtextextended('skiplock.mark.skiplock.' || r.queue, 0));
    END LOOP;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS jobs_mark_inserted_g ON skiplock.jobs;
CREATE TRIGGER jobs_mark_inserted_g AFTER INSERT ON skiplock.jobs REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION skiplock.jobs_mark_inserted_g();
