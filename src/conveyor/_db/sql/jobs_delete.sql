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
)
SELECT id FROM gone;
