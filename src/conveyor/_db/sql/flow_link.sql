-- Writes a flow's edges (job_id waits for depends_on, read by ref), records the
-- jobs waited for as parents, and makes each step with dependencies wait for them:
-- 'waiting' until waiting_for counts down to 0.
WITH edges AS (
    INSERT INTO {schema}.job_dependency (job_id, depends_on, ref, on_failure)
    SELECT * FROM unnest(%(job_id)s::uuid[], %(depends_on)s::uuid[], %(ref)s::text[],
                         %(on_failure)s::text[])
    ON CONFLICT DO NOTHING
    RETURNING job_id
),
parents AS (
    INSERT INTO {schema}.job_parent (job_id)
    SELECT DISTINCT p.id FROM unnest(%(depends_on)s::uuid[]) AS p (id)
    ON CONFLICT DO NOTHING
),
counts AS (
    SELECT e.job_id, count(*)::integer AS n FROM edges AS e GROUP BY e.job_id
)
UPDATE {schema}.job AS j
SET state = 'waiting', waiting_for = j.waiting_for + c.n, has_dependencies = true
FROM counts AS c
WHERE j.id = ANY (ARRAY(SELECT counts.job_id FROM counts)) AND j.id = c.job_id;
