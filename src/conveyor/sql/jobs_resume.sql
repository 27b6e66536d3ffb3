-- Puts cancelled jobs back in the queue, due now.
-- The queues are notified, to wake their workers.
WITH resumed AS (
    UPDATE {schema}.job
    SET state = 'created', completed_at = NULL, start_after = now(),
        keep_until = now() + (keep_until - start_after)
    WHERE id = ANY (%(ids)s) AND state = 'cancelled'
    RETURNING id, queue
)
SELECT id,
       (SELECT count(pg_notify(%(channel)s, due.queue))
        FROM (SELECT DISTINCT queue FROM resumed) AS due) AS notified
FROM resumed;
