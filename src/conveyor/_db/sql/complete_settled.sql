-- Records the outcome of a handler call that completed its own jobs, in its own
-- transaction (complete(job, output, conn=...)), fenced by attempt. A job that
-- attempt completed without an output takes the output the handler returned; a
-- job still active (the handler's transaction rolled back, and the handler
-- returned all the same) is completed as complete.sql would.
WITH input AS (
    SELECT * FROM unnest(%(id)b::uuid[], %(attempt)b::integer[], %(output)b::jsonb[],
                         %(progress)b::jsonb[])
        AS i (id, attempt, output, progress)
)
UPDATE {schema}.job AS j
SET state = 'completed',
    completed_at = CASE WHEN j.state = 'active' THEN now() ELSE j.completed_at END,
    output = COALESCE(j.output, i.output),
    progress = COALESCE(i.progress, j.progress),
    lease_expires_at = NULL
FROM input AS i
WHERE j.id = i.id
  AND j.attempt = i.attempt
  AND (j.state = 'active' OR (j.state = 'completed' AND j.output IS NULL));
