-- Sends failed jobs round again, due now: a retry by hand counts as a retry, and
-- the limit grows so that exactly one more attempt is allowed.
-- A step of a flow that still has dependencies to wait for waits for them again.
-- The queues are notified, to wake their workers.
WITH moved AS (
    UPDATE {schema}.job
    SET state = CASE WHEN waiting_for > 0 THEN 'waiting' ELSE 'retry' END::{schema}.job_state,
        completed_at = NULL, start_after = now(),
        keep_until = now() + (keep_until - start_after),
        retry_count = retry_count + 1,
        retry_limit = GREATEST(retry_limit, retry_count + 1)
    WHERE id = ANY (%(ids)s) AND state = 'failed'
    RETURNING id, queue
)
SELECT id, {notify_moved} AS notified
FROM moved;
