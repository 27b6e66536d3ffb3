-- Completes active jobs. A job given with its attempt is completed only if that
-- attempt still holds it (a fencing token); a NULL attempt skips the check.
-- Progress reported after the last heartbeat comes with the outcome. With
-- %(unwaited)s, jobs marked as waited for (has_dependents) are skipped: a worker
-- completes them again without it, together with their dependents' settling.
WITH input AS (
    SELECT * FROM unnest(%(id)b::uuid[], %(attempt)b::integer[], %(output)b::jsonb[],
                         %(progress)b::jsonb[])
        AS i (id, attempt, output, progress)
)
UPDATE {schema}.job AS j
SET state = 'completed',
    completed_at = now(),
    output = i.output,
    progress = COALESCE(i.progress, j.progress),
    lease_expires_at = NULL
FROM input AS i
WHERE j.id = i.id
  AND j.state = 'active'
  AND (i.attempt IS NULL OR j.attempt = i.attempt)
  AND NOT (%(unwaited)s AND j.has_dependents);
