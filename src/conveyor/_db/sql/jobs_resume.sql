-- Puts cancelled jobs back in the queue, due now; a step of a flow that still has
-- dependencies to wait for waits for them again.
-- The queues are notified, to wake their workers.
WITH moved AS (
    UPDATE {schema}.job
    SET state = CASE WHEN waiting_for > 0 THEN 'waiting' ELSE 'created'
                END::{schema}.job_state,
        completed_at = NULL, start_after = now(),
        keep_until = now() + (keep_until - start_after)
    WHERE id = ANY (%(ids)s) AND state = 'cancelled'
    RETURNING id, queue
)
SELECT id, {notify_moved} AS notified
FROM moved;
