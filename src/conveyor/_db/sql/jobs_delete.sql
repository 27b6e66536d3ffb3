-- Deletes jobs with their dependency edges, both ways (what they waited for was
-- settled first: settle_dependents.sql with removing).
WITH gone AS (
    DELETE FROM {schema}.job WHERE id = ANY (%(ids)s) RETURNING id, has_dependencies, has_dependents
),
{forget_edges}
SELECT id FROM gone;
