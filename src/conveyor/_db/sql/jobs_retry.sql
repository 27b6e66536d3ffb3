-- Sends failed jobs round again, due now: a retry by hand counts as a retry, and
-- the limit grows so that exactly one more attempt is allowed.
-- The queues are notified, to wake their workers.
WITH moved AS (
    UPDATE {schema}.job
    SET state = 'retry', completed_at = NULL, start_after = now(),
        keep_until = now() + (keep_until - start_after),
        retry_count = retry_count + 1,
        retry_limit = GREATEST(retry_limit, retry_count + 1)
    WHERE id = ANY (%(ids)s) AND state = 'failed'
    RETURNING id, queue
)
SELECT id, {notify_moved} AS notified
FROM moved;
