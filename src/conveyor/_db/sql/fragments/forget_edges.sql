-- A shared part: the CTEs that forget what a deleted job leaves of the graph: its
-- edges both ways. The statement that names it has deleted the jobs in a CTE
-- named gone, RETURNING id, has_dependencies, has_dependents: a plain job, with
-- neither, costs no probe of the edges.
waited AS (
    DELETE FROM {schema}.job_dependency AS d USING gone WHERE gone.has_dependencies AND d.job_id = gone.id
),
awaited AS (
    DELETE FROM {schema}.job_dependency AS d USING gone WHERE gone.has_dependents AND d.depends_on = gone.id
)
