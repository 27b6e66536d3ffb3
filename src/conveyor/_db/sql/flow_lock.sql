-- Locks the existing jobs a flow's steps depend on, and reads their states. The
-- lock conflicts with the UPDATE that finishes a job: a job that finishes while
-- the flow is written waits for its commit, and then settles the new edges
-- (settle_dependents.sql reads them in a statement of its own); a job that
-- finished first is seen finished here.
SELECT j.id::text AS id, j.state::text AS state
FROM {schema}.job AS j
WHERE j.id = ANY (%(ids)s::uuid[])
ORDER BY j.id
FOR NO KEY UPDATE;
