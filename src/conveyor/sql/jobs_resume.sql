-- Puts cancelled jobs back in the queue, due now.
UPDATE {schema}.job
SET state = 'created', completed_at = NULL, start_after = now(),
    keep_until = now() + (keep_until - start_after)
WHERE id = ANY (%(ids)s) AND state = 'cancelled'
RETURNING id;
