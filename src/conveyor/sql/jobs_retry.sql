-- Sends failed jobs round again, due now, with one more attempt allowed.
UPDATE {schema}.job
SET state = 'retry', completed_at = NULL, start_after = now(),
    keep_until = now() + (keep_until - start_after),
    retry_limit = GREATEST(retry_limit, retry_count + 1)
WHERE id = ANY (%(ids)s) AND state = 'failed'
RETURNING id;
