-- C: row-level trigger calling mark_lower
CREATE OR REPLACE FUNCTION skiplock.jobs_mark_inserted_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM skiplock.mark_lower(NEW.queue, NEW.priority, NEW.run_at, NEW.id); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS jobs_mark_inserted_row ON skiplock.jobs;
CREATE TRIGGER jobs_mark_inserted_row AFTER INSERT ON skiplock.jobs FOR EACH ROW WHEN (NEW.state = 'available') EXECUTE FUNCTION skiplock.jobs_mark_inserted_row();
ALTER TABLE skiplock.jobs DISABLE TRIGGER jobs_mark_inserted_row;
