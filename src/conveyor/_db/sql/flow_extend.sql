-- Steps added while a job runs (a handler's flow that depends on the handler's own
-- job) extend that job: what waits for it (parent) waits for each such step too,
-- with the same failure policy, and reads the step's output by its id.
WITH pairs AS (
    SELECT * FROM unnest(%(parent)s::uuid[], %(step)s::uuid[]) AS p (parent, step)
),
edges AS (
    INSERT INTO {schema}.job_dependency (job_id, depends_on, ref, on_failure)
    SELECT d.job_id, p.step, NULL, d.on_failure
    FROM pairs AS p
    JOIN {schema}.job_dependency AS d ON d.depends_on = p.parent AND NOT d.settled
    JOIN {schema}.job AS w ON w.id = d.job_id AND w.state = 'waiting'
    WHERE d.job_id <> p.step
    ON CONFLICT DO NOTHING
    RETURNING job_id
),
counts AS (
    SELECT e.job_id, count(*)::integer AS n FROM edges AS e GROUP BY e.job_id
)
UPDATE {schema}.job AS j
SET waiting_for = j.waiting_for + c.n
FROM counts AS c
WHERE j.id = c.job_id;
