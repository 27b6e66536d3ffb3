-- A flow's edges (job_id waits for depends_on, whose output it reads by ref; NULL:
-- by id), one row each, the steps' ids made by the client: no edge can exist yet.
COPY {schema}.job_dependency (job_id, depends_on, ref, on_failure) FROM STDIN (FORMAT BINARY);
