-- Deletes jobs with their dependency edges, both ways (what they waited for was
-- settled first: settle_dependents.sql with removing).
WITH gone AS (
    DELETE FROM {schema}.job WHERE id = ANY (%(ids)s) RETURNING id
),
waited AS (
    DELETE FROM {schema}.job_dependency AS d USING gone WHERE d.job_id = gone.id
),
awaited AS (
    DELETE FROM {schema}.job_dependency AS d USING gone WHERE d.depends_on = gone.id
),
unparented AS (
    DELETE FROM {schema}.job_parent AS k USING gone WHERE k.job_id = gone.id
)
SELECT id FROM gone;
