-- Dead-letter copies remember where they came from: the id and queue of the job
-- that failed for good (its final error is the copy's error). NULL on every other
-- job. The index finds the copies of a job (its page in the dashboard) and holds
-- only copies.
ALTER TABLE {schema}.job
    ADD COLUMN source_id    uuid,
    ADD COLUMN source_queue text;

CREATE INDEX job_source ON {schema}.job (source_id) WHERE source_id IS NOT NULL;
