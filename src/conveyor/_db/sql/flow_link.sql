-- Writes a flow's edges (job_id waits for depends_on, read by ref). Steps written
-- straight into the job table were written waiting and marked already; steps that
-- went through a queue's unique indexes (%(staged)s) were written as any job, and
-- are made to wait here: 'waiting' until waiting_for counts down to 0, and marked
-- as waited for (has_dependents) when they are among %(waited)s.
WITH edges AS (
    INSERT INTO {schema}.job_dependency (job_id, depends_on, ref, on_failure)
    SELECT * FROM unnest(%(job_id)s::uuid[], %(depends_on)s::uuid[], %(ref)s::text[],
                         %(on_failure)s::text[])
    ON CONFLICT DO NOTHING
    RETURNING job_id
),
counts AS (
    SELECT s.id, count(e.job_id)::integer AS n
    FROM unnest(%(staged)s::uuid[]) AS s (id)
    LEFT JOIN edges AS e ON e.job_id = s.id
    GROUP BY s.id
)
UPDATE {schema}.job AS j
SET state = CASE WHEN c.n > 0 THEN 'waiting' ELSE j.state END::{schema}.job_state,
    waiting_for = j.waiting_for + c.n,
    has_dependencies = j.has_dependencies OR c.n > 0,
    has_dependents = j.has_dependents OR j.id = ANY (%(waited)s::uuid[])
FROM counts AS c
WHERE j.id = ANY (%(staged)s::uuid[]) AND j.id = c.id;
