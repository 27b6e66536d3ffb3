-- Cancels jobs that have not finished. A running handler is not interrupted here;
-- its completion will no longer apply because the job is no longer active.
UPDATE {schema}.job
SET state = 'cancelled', completed_at = now(), lease_expires_at = NULL
WHERE id = ANY (%(ids)s) AND state < 'completed'
RETURNING id;
