-- The jobs waiting for one job (or that waited), with the edges' refs and policies
-- (the first %(limit)s; NULL: all).
SELECT {job_columns}, d.ref, d.on_failure, d.settled
FROM {schema}.job_dependency AS d
JOIN {schema}.job AS j ON j.id = d.job_id
WHERE d.depends_on = %(id)s
ORDER BY j.id
LIMIT %(limit)s;
