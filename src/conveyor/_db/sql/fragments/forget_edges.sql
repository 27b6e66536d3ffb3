-- A shared part: the CTEs that forget what a deleted job leaves of the graph: its
-- edges both ways and its key in job_parent. The statement that names it has
-- deleted the jobs in a CTE named gone, RETURNING id.
waited AS (
    DELETE FROM {schema}.job_dependency AS d USING gone WHERE d.job_id = gone.id
),
awaited AS (
    DELETE FROM {schema}.job_dependency AS d USING gone WHERE d.depends_on = gone.id
),
unparented AS (
    DELETE FROM {schema}.job_parent AS k USING gone WHERE k.job_id = gone.id
)
