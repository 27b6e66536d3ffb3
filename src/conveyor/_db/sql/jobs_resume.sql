-- Puts cancelled jobs back in the queue, due now.
-- The queues are notified, to wake their workers.
WITH moved AS (
    UPDATE {schema}.job
    SET state = 'created', completed_at = NULL, start_after = now(),
        keep_until = now() + (keep_until - start_after)
    WHERE id = ANY (%(ids)s) AND state = 'cancelled'
    RETURNING id, queue
)
SELECT id, {notify_moved} AS notified
FROM moved;
