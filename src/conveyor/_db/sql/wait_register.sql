-- Registers a caller of wait_for, whose job's finishing then notifies
-- <schema>.finished (settle_dependents.sql).
INSERT INTO {schema}.job_waiter (job_id) VALUES (%(id)s);
