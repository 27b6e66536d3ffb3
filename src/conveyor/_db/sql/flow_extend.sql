-- Steps added while a job runs (a handler's flow that depends on the handler's own
-- job) extend that job: what waits for it (parent) waits for each such step too,
-- and reads the step's output by its id. A waiting job that the step itself
-- depends on (through %(root_step)s/%(root_job)s: the existing jobs each step
-- depends on, directly or through steps of its flow, and what they depend on)
-- is not extended: that would be a cycle. Two edges to one dependent take the
-- strictest policy. The steps were written marked as waited for (has_dependents).
WITH RECURSIVE pairs AS (
    SELECT * FROM unnest(%(parent)s::uuid[], %(step)s::uuid[]) AS p (parent, step)
),
ancestors (step, job) AS (
    SELECT * FROM unnest(%(root_step)s::uuid[], %(root_job)s::uuid[])
    UNION
    SELECT a.step, d.depends_on
    FROM ancestors AS a
    JOIN {schema}.job_dependency AS d ON d.job_id = a.job
),
edges AS (
    INSERT INTO {schema}.job_dependency (job_id, depends_on, ref, on_failure)
    SELECT DISTINCT ON (d.job_id, p.step) d.job_id, p.step, NULL, d.on_failure
    FROM pairs AS p
    JOIN {schema}.job_dependency AS d ON d.depends_on = p.parent AND NOT d.settled
    JOIN {schema}.job AS w ON w.id = d.job_id AND w.state = 'waiting'
    WHERE d.job_id <> p.step
      AND NOT EXISTS (SELECT 1 FROM ancestors AS a WHERE a.step = p.step AND a.job = d.job_id)
    ORDER BY d.job_id, p.step,
             CASE d.on_failure WHEN 'fail' THEN 0 WHEN 'cancel' THEN 1 ELSE 2 END
    ON CONFLICT DO NOTHING
    RETURNING job_id, depends_on
),
counts AS (
    SELECT e.job_id, count(*)::integer AS n FROM edges AS e GROUP BY e.job_id
)
UPDATE {schema}.job AS j
SET waiting_for = j.waiting_for + c.n
FROM counts AS c
WHERE j.id = c.job_id;
