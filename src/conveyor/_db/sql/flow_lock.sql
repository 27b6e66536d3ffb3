-- Locks the existing jobs a flow's steps depend on, records them as parents, and
-- reads their states. The lock conflicts with the UPDATE that finishes a job: a
-- job that finishes while the flow is written waits for its commit, and its
-- settling (a statement of its own: settle_dependents.sql) then sees the new
-- parent and edges; a job that finished first is seen finished here, and the
-- flow settles its edges itself.
WITH locked AS (
    SELECT j.id, j.state
    FROM {schema}.job AS j
    WHERE j.id = ANY (%(ids)s::uuid[])
    ORDER BY j.id
    FOR NO KEY UPDATE
),
parents AS (
    INSERT INTO {schema}.job_parent (job_id)
    SELECT locked.id FROM locked
    ON CONFLICT DO NOTHING
)
SELECT locked.id::text AS id, locked.state::text AS state FROM locked;
