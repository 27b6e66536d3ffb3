-- Locks jobs that something is about to wait for (what a flow's steps depend on,
-- or the job of a caller of wait_for), marks them as waited for (has_dependents),
-- and reads their states. The lock conflicts with the UPDATE that finishes a job:
-- a job that finishes meanwhile waits for this transaction's commit, then sees the
-- mark (a worker's completion of unmarked jobs skips it, and completes it again
-- together with the settling: worker/completer.py), and the settling, a statement
-- of its own (settle_dependents.sql), sees the new edges and waiters. A job that
-- finished first is seen finished here: the flow settles its edges itself, and
-- the waiter has its answer.
WITH locked AS (
    SELECT j.id, j.state, j.has_dependents
    FROM {schema}.job AS j
    WHERE j.id = ANY (%(ids)s::uuid[])
    ORDER BY j.id
    FOR NO KEY UPDATE
),
marked AS (
    UPDATE {schema}.job AS j
    SET has_dependents = true
    WHERE j.id = ANY (ARRAY(SELECT locked.id FROM locked WHERE NOT locked.has_dependents))
)
SELECT locked.id::text AS id, locked.state::text AS state FROM locked;
