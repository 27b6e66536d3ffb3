-- The jobs one job waits for, with the edges' refs and failure policies (the
-- first %(limit)s; NULL: all).
SELECT {job_columns}, d.ref, d.on_failure, d.settled
FROM {schema}.job_dependency AS d
JOIN {schema}.job AS j ON j.id = d.depends_on
WHERE d.job_id = %(id)s
ORDER BY j.id
LIMIT %(limit)s;
