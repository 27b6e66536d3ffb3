-- Registers a caller of wait_for, whose job's finishing then notifies
-- <schema>.finished (settle_dependents.sql); the job is marked next (mark_waited.sql).
INSERT INTO {schema}.job_waiter (job_id) VALUES (%(id)s);
