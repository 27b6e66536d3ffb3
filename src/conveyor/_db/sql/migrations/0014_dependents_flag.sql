-- A job that others wait for says so in its own row: has_dependents, set by the
-- flow that adds its dependents (mark_waited.sql locks and marks an existing job,
-- a flow's own steps are written marked). A worker's completion of an unmarked
-- job stays one statement; a marked job is completed together with the settling
-- of its dependents (worker/completer.py). The mark replaces the job_parent key
-- of 0013: finding it needs no probe of another table, and the UPDATE that marks
-- a running job makes a concurrent completion re-read the row and see the mark.
ALTER TABLE {schema}.job ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;

UPDATE {schema}.job AS j SET has_dependents = true
FROM {schema}.job_parent AS k
WHERE j.id = k.job_id;

DROP TABLE {schema}.job_parent;

-- The edges of a job's dependents, in the order of their ids: pages of a batch's
-- callback's dependents (job_dependents.sql) read the index in order.
DROP INDEX {schema}.job_dependency_parent;
CREATE INDEX job_dependency_parent ON {schema}.job_dependency (depends_on, job_id);
