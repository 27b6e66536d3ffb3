-- A shared part, in place of claim_update.sql for a pop: the jobs of a CTE named
-- chosen are claimed and completed at once (at most once: no lease, nothing to
-- redeliver). The statement that names it adds RETURNING.
UPDATE {schema}.job AS j
SET state = 'completed',
    attempt = j.attempt + 1,
    started_at = now(),
    completed_at = now(),
    lease_expires_at = NULL
WHERE j.id = ANY (ARRAY(SELECT chosen.id FROM chosen))
  AND j.state < 'active'
