-- Hands jobs back to their queue, when a worker stops before they finish or a
-- fetch's consumer releases them: due after %(delay)s, without counting a failed
-- attempt (attempt still counts the delivery). Fenced by attempt like
-- complete.sql. The queues are notified, so other workers take the jobs at once.
WITH input AS (
    SELECT * FROM unnest(%(id)b::uuid[], %(attempt)b::integer[]) AS i (id, attempt)
),
moved AS (
    UPDATE {schema}.job AS j
    SET state = CASE WHEN j.retry_count > 0 THEN 'retry' ELSE 'created' END::{schema}.job_state,
        start_after = now() + %(delay)s::interval,
        started_at = NULL,
        lease_expires_at = NULL
    FROM input AS i
    WHERE j.id = i.id AND j.state = 'active' AND j.attempt = i.attempt
    RETURNING j.id, j.queue
)
SELECT id, {notify_moved} AS notified
FROM moved;
