-- Cancels jobs that have not finished, waiting steps of a flow among them. A
-- running handler is not interrupted here; its completion will no longer apply
-- because the job is no longer active. What waits for them is settled next
-- (settle_dependents.sql).
UPDATE {schema}.job
SET state = 'cancelled', completed_at = now(), lease_expires_at = NULL
WHERE id = ANY (%(ids)s) AND (state < 'completed' OR state = 'waiting')
RETURNING id;
